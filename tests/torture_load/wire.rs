//! The wire format between the clients and the server: the frames (an op byte and a
//! big-endian `u32` argument, then, for an echo, the payload), the byte responses and floods
//! are made of, the two fixed messages the server sends, and the frame reads and writes both
//! sides share.

use std::io;

use treeloop::net::TcpStream;

/// The byte responses and floods are made of (the goodbye has none of it).
pub const FILL: u8 = b'.';

/// What a half-closed connection's server writes once it has seen the end of the stream.
pub const HALF_CLOSE_ACK: &[u8] = b"half-close seen";

/// What every server connection task still open at the shutdown writes in its cleanup.
pub const GOODBYE: &[u8] = b"server shutting down";

// A frame is an op byte and a big-endian `u32` argument, then (for an echo) the payload.

/// Op: echo the payload that follows (the argument is its length).
pub const ECHO: u8 = b'E';
/// Op: send back as many FILL bytes as the argument says.
pub const RESPOND: u8 = b'R';
/// Op: the same, and the server reports when its write is pending (the flood of a slow
/// reader).
pub const FLOOD_ME: u8 = b'F';
/// Op: the client shuts its write side after this frame and keeps reading.
pub const HALF_CLOSE: u8 = b'H';

/// Frame header length.
const HEADER: usize = 5;

/// Reads exactly `buf.len()` bytes; an end of stream is `UnexpectedEof`.
pub async fn read_exact(stream: &TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(())
}

/// Reads the next frame header; `None` at an end of stream between frames.
pub async fn read_header(stream: &TcpStream) -> io::Result<Option<(u8, usize)>> {
    let mut header = [0; HEADER];
    if stream.read(&mut header[..1]).await? == 0 {
        return Ok(None);
    }
    read_exact(stream, &mut header[1..]).await?;
    let arg = u32::from_be_bytes(header[1..].try_into().unwrap());
    Ok(Some((header[0], arg as usize)))
}

/// A frame header.
pub fn header(op: u8, arg: usize) -> [u8; HEADER] {
    let mut header = [op; HEADER];
    header[1..].copy_from_slice(&u32::try_from(arg).unwrap().to_be_bytes());
    header
}
