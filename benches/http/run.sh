#!/usr/bin/env bash
# hyper 1.x on treeloop against hyper 1.x on tokio (current_thread) under wrk, on loopback.
#
# What it measures (benches/README.md, "HTTP: hyper on treeloop and on tokio, under wrk"):
#   1. requests/s, p50 and p99 of `GET /` at 1, 50 and 256 keep-alive connections, and of
#      `POST /upload` with a 16 KiB body at 50 connections (where treeloop-hyper's reads
#      would show), in interleaved rounds: each round runs every workload on both runtimes,
#      the first runtime alternating from round to round, a fresh server per run, after a
#      discarded second of the same workload; then the medians with their min-max, the
#      ratios treeloop/tokio of the medians, and the range of the per-round ratios; also the
#      server's CPU time per request (user + system, from /proc);
#   2. SIGINT under load: wrk with 256 connections, SIGINT to the server after 3 s; wrk's
#      socket errors (connect, read, write, timeout), non-2xx responses, the server's exit
#      status, how long it took to exit, and its last line;
#   3. with --callgrind: instructions per request of each server (valgrind), and how many of
#      treeloop's are the copy in treeloop-hyper's HyperIo::poll_read.
# The server is pinned to core 0 and wrk to core 1 when there are two cores or more. Only
# 127.0.0.1 is ever a target; every run is bounded (wrk -d, and 30 s at most for a server to
# start or to exit). Installs wrk (and valgrind, for --callgrind) with apt-get if missing:
# as root, or through a password-less sudo.
#
# Run with: benches/http/run.sh [--rounds N] [--duration SECONDS] [--quick] [--callgrind]
#   defaults: 6 rounds of 6 s runs, about 7 minutes (--callgrind: one more); --quick: 1 round
#   of 2 s runs, a check that the script works, not a measurement. Tables go to stdout as
#   markdown, progress to stderr. CARGO_TARGET_DIR is honoured.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

ROUNDS=6
DURATION=6
CALLGRIND=0
SIGINT_TRIALS=3
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --quick) ROUNDS=1; DURATION=2; SIGINT_TRIALS=1; shift ;;
        --callgrind) CALLGRIND=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

RUNTIMES=(treeloop tokio)
# Workloads: a name, wrk's connection count, and a wrk script (empty: GET /).
WORKLOADS=("GET / c=1|1|" "GET / c=50|50|" "GET / c=256|256|" "POST 16 KiB c=50|50|post")
POST_BYTES=16384

fail() {
    echo "run.sh: $*" >&2
    exit 1
}
progress() {
    echo "run.sh: $*" >&2
}

# Installs a Debian package with apt-get unless COMMAND is already there: as root, or
# through sudo when it needs no password.
ensure_installed() {
    local command=$1 package=$2
    command -v "$command" >/dev/null 2>&1 && return
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            fail "$command is missing, and installing it needs root or a password-less sudo:" \
                "install $package (apt-get install $package), then rerun"
        fi
    fi
    command -v apt-get >/dev/null 2>&1 ||
        fail "$command is missing and there is no apt-get to install it: install $package, then rerun"
    progress "installing $package"
    local install="$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $package"
    local output
    # A fresh container may have no package lists: on failure, update them and retry once.
    if ! output=$($install 2>&1 </dev/null) &&
        ! output=$({ $sudo apt-get update -q && $install; } 2>&1 </dev/null); then
        echo "$output" >&2
        fail "could not install $package with apt-get (output above): install it, then rerun"
    fi
    command -v "$command" >/dev/null 2>&1 || fail "apt-get installed $package, but $command is not on PATH"
}

ensure_installed wrk wrk
[ "$CALLGRIND" -eq 0 ] || ensure_installed valgrind valgrind

# Pinning: the server on core 0, wrk on core 1, when there are two cores and taskset.
PIN_SERVER=() PIN_WRK=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    PIN_SERVER=(taskset -c 0) PIN_WRK=(taskset -c 1)
    PINNING="server on core 0, wrk on core 1"
else
    PINNING="not pinned ($(nproc) cores or no taskset)"
fi

# Enough descriptors for 256 connections on each side, with room.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
    ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi

progress "building the servers (cargo bench --bench http --no-run)"
BIN=$(cargo bench --bench http --no-run --message-format=json </dev/null |
    sed -nE 's|.*"target":\{[^}]*"name":"http".*"executable":"([^"]*)".*|\1|p' | tail -n 1)
[ -x "$BIN" ] || fail "could not find the bench binary (cargo bench --bench http --no-run)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/treeloop-http-bench.XXXXXX")
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.path = "/upload"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("x", $POST_BYTES)
EOF

# Starts `serve RUNTIME 0` (under the optional command prefix in WRAP) and waits for its
# address: sets SERVER_PID, SERVER_RUNTIME, SERVER_ADDR and SERVER_LOG.
WRAP=()
start_server() {
    local runtime=$1
    SERVER_RUNTIME=$runtime
    SERVER_LOG=$WORK/server.$runtime.log
    # Emptied here, not by the child's redirection: the wait below must not read the line of
    # the previous server before the child has truncated the file.
    : >"$SERVER_LOG"
    "${PIN_SERVER[@]}" "${WRAP[@]}" "$BIN" serve "$runtime" 0 >"$SERVER_LOG" 2>&1 </dev/null &
    SERVER_PID=$!
    local waited=0
    until SERVER_ADDR=$(sed -nE 's|.*listening on http://([0-9.]+:[0-9]+).*|\1|p' "$SERVER_LOG") &&
        [ -n "$SERVER_ADDR" ]; do
        kill -0 "$SERVER_PID" 2>/dev/null || fail "the $runtime server exited: $(cat "$SERVER_LOG")"
        [ "$waited" -lt 300 ] || fail "the $runtime server did not listen within 30 s"
        sleep 0.1
        waited=$((waited + 1))
    done
}

# Sends SIGINT to the server and waits for it (30 s at most, then SIGKILL): sets
# SERVER_STATUS, SERVER_EXIT_MS (how long it took to exit, to 10 ms) and SERVER_LAST (its
# last line of output).
stop_server() {
    local signalled
    signalled=$(date +%s%N)
    kill -INT "$SERVER_PID" 2>/dev/null || true
    local waited=0
    while kill -0 "$SERVER_PID" 2>/dev/null && [ "$waited" -lt 3000 ]; do
        sleep 0.01
        waited=$((waited + 1))
    done
    SERVER_EXIT_MS=$((($(date +%s%N) - signalled) / 1000000))
    if kill -KILL "$SERVER_PID" 2>/dev/null; then
        progress "the $SERVER_RUNTIME server was still running 30 s after SIGINT: killed it"
    fi
    SERVER_STATUS=0
    wait "$SERVER_PID" 2>/dev/null || SERVER_STATUS=$?
    SERVER_PID=""
    SERVER_LAST=$(tail -n 1 "$SERVER_LOG")
}

# Runs wrk: CONNECTIONS SECONDS SCRIPT OUTPUT (one wrk thread: it has one core).
run_wrk() {
    local connections=$1 seconds=$2 script=$3 output=$4
    local args=(-t1 -c"$connections" -d"${seconds}s" --latency)
    [ -z "$script" ] || args+=(-s "$WORK/$script.lua")
    if ! "${PIN_WRK[@]}" wrk "${args[@]}" "http://$SERVER_ADDR/" >"$output" 2>&1 </dev/null; then
        cat "$output" >&2
        fail "wrk failed against the $SERVER_RUNTIME server at $SERVER_ADDR (its output above)"
    fi
}

# Prints a wrk report's requests/s, p50 and p99 (µs), socket errors (connect read write
# timeout), non-2xx responses and requests, tab-separated.
parse_wrk() {
    awk '
        function us(value) {
            if (value ~ /us$/) return substr(value, 1, length(value) - 2) + 0
            if (value ~ /ms$/) return substr(value, 1, length(value) - 2) * 1000
            if (value ~ /s$/) return substr(value, 1, length(value) - 1) * 1000000
            return -1
        }
        $1 == "50%" { p50 = us($2) }
        $1 == "99%" { p99 = us($2) }
        $1 == "Requests/sec:" { rps = $2 }
        $2 == "requests" && $3 == "in" { requests = $1 }
        /Socket errors:/ {
            gsub(",", "")
            connect = $4; read = $6; write = $8; timeout = $10
        }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        END {
            printf "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", rps, p50, p99, connect, read, write,
                timeout, non2xx, requests
        }' "$1"
}

# ---------------------------------------------------------------------------------------
# 1. Throughput and latency, interleaved.

CPU=$(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -n 1)
progress "$ROUNDS rounds of ${DURATION} s runs; $PINNING; load: $(cut -d' ' -f1-3 /proc/loadavg)"

# One short warm-up run per runtime, discarded.
for runtime in "${RUNTIMES[@]}"; do
    start_server "$runtime"
    run_wrk 50 2 "" "$WORK/warmup.txt"
    stop_server
done

RESULTS=$WORK/results.tsv
CLK_TCK=$(getconf CLK_TCK)
: >"$RESULTS"
LOADS=()
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order=(treeloop tokio); else order=(tokio treeloop); fi
    LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
    progress "round $round/$ROUNDS (${order[*]}), load $(cut -d' ' -f1-3 /proc/loadavg)"
    for workload in "${WORKLOADS[@]}"; do
        IFS='|' read -r name connections script <<<"$workload"
        # A discarded second of this workload on the runtime that runs second, so that each
        # measured run follows a run of the same workload on the other runtime. (Without it
        # the second run of a pair was favoured: in one run of 5 rounds, the runtime going
        # second won 9 of the 10 pairs at 50 and 256 connections.)
        start_server "${order[1]}"
        run_wrk "$connections" 1 "$script" "$WORK/warmup.txt"
        stop_server
        for runtime in "${order[@]}"; do
            start_server "$runtime"
            run_wrk "$connections" "$DURATION" "$script" "$WORK/wrk.txt"
            # The server's CPU time (user + system), read before it starts shutting down.
            ticks=$(awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat") ||
                fail "the $runtime server died during '$name': $(cat "$SERVER_LOG")"
            stop_server
            [ "$SERVER_STATUS" -eq 0 ] || fail "the $runtime server exited with $SERVER_STATUS after '$name'"
            IFS=$'\t' read -r rps p50 p99 connect read write timeout non2xx requests \
                < <(parse_wrk "$WORK/wrk.txt")
            if [ -z "$rps" ] || [ "$((connect + read + write + timeout + non2xx))" -ne 0 ]; then
                cat "$WORK/wrk.txt" >&2
                fail "$runtime, $name: wrk reported errors or no result (above)"
            fi
            cpu=$(awk -v ticks="$ticks" -v hz="$CLK_TCK" -v requests="$requests" \
                'BEGIN { printf "%.3f", ticks * 1000000 / hz / requests }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$runtime" "$round" "$rps" "$p50" "$p99" \
                "$cpu" >>"$RESULTS"
            progress "  $name $runtime: $rps req/s, p50 ${p50} us, p99 ${p99} us, CPU ${cpu} us/request"
        done
    done
done

echo "### hyper on treeloop and on tokio: requests/s, p50, p99"
echo
echo "$(date -u '+%Y-%m-%d %H:%M') UTC: $(nproc) cores, $CPU; $PINNING; $ROUNDS rounds of" \
    "${DURATION} s per run, runtimes interleaved; 1-minute load at the rounds' starts:" \
    "${LOADS[*]}. $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)."
echo
# Medians (and min-max) per workload and runtime; then the ratios of the medians, with the
# range of the per-round ratios (each round's treeloop run over its tokio run).
awk -F'\t' '
    # The median of the n numbers in the space-separated list; sets lo and hi.
    function median(list, n,    sorted, i, j, v) {
        split(list, sorted, " ")
        for (i = 2; i <= n; i++) {
            v = sorted[i] + 0
            for (j = i - 1; j >= 1 && sorted[j] + 0 > v; j--) sorted[j + 1] = sorted[j]
            sorted[j + 1] = v
        }
        lo = sorted[1]; hi = sorted[n]
        return n % 2 ? sorted[(n + 1) / 2] : (sorted[n / 2] + sorted[n / 2 + 1]) / 2
    }
    function cell(key, metric, format,    m) {
        if (format == "") format = "%.0f"
        m = median(values[key, metric], count[key])
        return sprintf(format " (" format "-" format ")", m, lo, hi)
    }
    # The ratio of the medians, the per-round range, and whether it meets TARGET ("ge", "le").
    function ratio(name, metric, target,    t, k, m, r, rounds, met) {
        t = name SUBSEP "treeloop"; k = name SUBSEP "tokio"
        m = median(values[t, metric], count[t]) / median(values[k, metric], count[k])
        rounds = ""
        for (r = 1; r <= last_round; r++)
            if ((name, "treeloop", r, metric) in by_round && (name, "tokio", r, metric) in by_round)
                rounds = rounds " " by_round[name, "treeloop", r, metric] / by_round[name, "tokio", r, metric]
        median(rounds, split(rounds, unused, " "))
        met = target == "" || (target == "ge" && m >= 1) || (target == "le" && m <= 1)
        return sprintf("%.3f [%.2f-%.2f]%s", m, lo, hi, (met ? "" : " missed"))
    }
    {
        key = $1 SUBSEP $2
        count[key]++
        values[key, "rps"] = values[key, "rps"] " " $4
        values[key, "p50"] = values[key, "p50"] " " $5
        values[key, "p99"] = values[key, "p99"] " " $6
        values[key, "cpu"] = values[key, "cpu"] " " $7
        by_round[$1, $2, $3, "rps"] = $4
        by_round[$1, $2, $3, "p50"] = $5
        by_round[$1, $2, $3, "p99"] = $6
        by_round[$1, $2, $3, "cpu"] = $7
        if ($3 > last_round) last_round = $3
        if (!($1 in seen)) { seen[$1] = 1; names[++workloads] = $1 }
    }
    END {
        print "| workload | runtime | requests/s | p50 (µs) | p99 (µs) | server CPU (µs/request) |"
        print "|---|---|---:|---:|---:|---:|"
        for (w = 1; w <= workloads; w++) {
            for (r = 1; r <= 2; r++) {
                runtime = r == 1 ? "treeloop" : "tokio"
                key = names[w] SUBSEP runtime
                printf "| %s | %s | %s | %s | %s | %s |\n", names[w], runtime, cell(key, "rps"),
                    cell(key, "p50"), cell(key, "p99"), cell(key, "cpu", "%.2f")
            }
        }
        print ""
        print "| workload | requests/s × tokio (target ≥ 1.0) | p50 × tokio | p99 × tokio (target ≤ 1.0) | server CPU/request × tokio |"
        print "|---|---:|---:|---:|---:|"
        for (w = 1; w <= workloads; w++)
            printf "| %s | %s | %s | %s | %s |\n", names[w], ratio(names[w], "rps", "ge"),
                ratio(names[w], "p50", ""), ratio(names[w], "p99", "le"), ratio(names[w], "cpu", "")
    }' "$RESULTS"
echo
echo "Medians over the rounds, min-max in parentheses. Ratios: treeloop's median over tokio's;"
echo "in brackets, the range of the per-round ratios (each round's treeloop run over its tokio"
echo "run). Server CPU: the server process's user + system time over the requests wrk counted"
echo "(time-slicing with other processes on its core does not inflate it; wrk, on the other"
echo "core, is left out)."

# ---------------------------------------------------------------------------------------
# 2. SIGINT under load.

echo
echo "### SIGINT under load: wrk -c256 for 8 s, SIGINT to the server after 3 s"
echo
echo "| runtime | trial | wrk connect | read | write | timeout | non-2xx | requests | exit status | exit after SIGINT (ms) | the server's last line |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for trial in $(seq 1 "$SIGINT_TRIALS"); do
    if [ $((trial % 2)) -eq 1 ]; then order=(treeloop tokio); else order=(tokio treeloop); fi
    for runtime in "${order[@]}"; do
        start_server "$runtime"
        run_wrk 256 8 "" "$WORK/sigint.txt" &
        wrk_pid=$!
        sleep 3
        stop_server
        wait "$wrk_pid" || true
        IFS=$'\t' read -r rps p50 p99 connect read write timeout non2xx requests \
            < <(parse_wrk "$WORK/sigint.txt")
        echo "| $runtime | $trial | $connect | $read | $write | $timeout | $non2xx | $requests | $SERVER_STATUS | $SERVER_EXIT_MS | $SERVER_LAST |"
        progress "  SIGINT $runtime: connect $connect, read $read, write $write, timeout $timeout, exit $SERVER_STATUS"
    done
done
echo
echo "wrk counts one read error for each connection the server closes while wrk's next request"
echo "is outstanding, so 256 is the floor for 256 connections; more would be connections reset"
echo "after a reconnect. Then wrk reconnects to the closed port until its 8 s are up; its"
echo "connects are non-blocking, so each refused attempt fails at its first write: the write"
echo "column counts those attempts, not requests lost."

# ---------------------------------------------------------------------------------------
# 3. Instructions per request, and treeloop-hyper's read copy (--callgrind).

[ "$CALLGRIND" -eq 1 ] || exit 0

# Runs SERVER under callgrind, sends REQUESTS requests of BODY bytes (0: GET) with the bench's
# own client, stops it; prints the total instructions, and those of the memcpy calls made
# from HyperIo::poll_read (inclusive).
callgrind_sample() {
    local runtime=$1 requests=$2 body=$3
    local out=$WORK/callgrind.$runtime.$requests.$body
    WRAP=(valgrind --tool=callgrind --callgrind-out-file="$out" --log-file="$out.log")
    start_server "$runtime"
    WRAP=()
    "$BIN" client "$SERVER_ADDR" "$requests" "$body" >/dev/null </dev/null ||
        fail "the client failed against $runtime under callgrind"
    stop_server
    [ "$SERVER_STATUS" -eq 0 ] || fail "the $runtime server exited with $SERVER_STATUS under callgrind"
    local total copy
    total=$(sed -nE 's/^summary: ([0-9]+).*/\1/p' "$out")
    # The copy: in the caller tree, each function's line (marked `*`) follows the lines of
    # its callers (marked `<`); add up the memcpy/memmove entries called from HyperIo's
    # poll_read.
    copy=$(callgrind_annotate --inclusive=yes --tree=caller "$out" 2>/dev/null |
        awk '
            /^ *[0-9,]+ .* < / { callers[++n] = $0; next }
            /^ *[0-9,]+ .* \* / {
                if ($0 ~ /mem(cpy|move)/)
                    for (i = 1; i <= n; i++)
                        if (callers[i] ~ /HyperIo.*poll_read/) {
                            split(callers[i], fields, " ")
                            gsub(",", "", fields[1])
                            sum += fields[1]
                        }
            }
            { n = 0 }
            END { printf "%d\n", sum }')
    printf '%s\t%s\n' "$total" "$copy"
}

echo
echo "### Instructions per request (callgrind; the server process, user space only)"
echo
echo "Per request: (count for 3,000 requests - count for 1,000) / 2,000, one keep-alive"
echo "connection, the bench's blocking client."
echo
echo "| request | treeloop | tokio | treeloop × tokio | of treeloop's: HyperIo's copy |"
echo "|---|---:|---:|---:|---:|"
for body in 0 "$POST_BYTES"; do
    declare -A per=() copy_per=()
    for runtime in "${RUNTIMES[@]}"; do
        progress "  callgrind: $runtime, body $body"
        IFS=$'\t' read -r small small_copy < <(callgrind_sample "$runtime" 1000 "$body")
        IFS=$'\t' read -r large large_copy < <(callgrind_sample "$runtime" 3000 "$body")
        per[$runtime]=$(((large - small) / 2000))
        copy_per[$runtime]=$(((large_copy - small_copy) / 2000))
    done
    label="GET /"
    [ "$body" -eq 0 ] || label="POST $((body / 1024)) KiB"
    awk -v label="$label" -v t="${per[treeloop]}" -v k="${per[tokio]}" -v c="${copy_per[treeloop]}" \
        'BEGIN { printf "| %s | %d | %d | %.3f | %d (%.1f%%) |\n", label, t, k, t / k, c, 100 * c / t }'
done
