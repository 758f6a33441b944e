#!/usr/bin/env bash
# rancher-boot's benchmark (docs/spec.md section 13, issue 6). Run as root on Debian from anywhere:
#
#   bench/run.sh           everything; results in bench/out/ (summary: bench/out/summary.txt)
#   bench/run.sh --quick   build and check the size budget only (for CI: a size is deterministic),
#                          for x86_64 and aarch64 alike; the timings are x86_64's (an emulated
#                          aarch64 timing would mean nothing)
#   bench/run.sh --probe   `rancher-boot probe` only (issue 17), against a real Erlang VM and a real
#                          RabbitMQ (Debian's rabbitmq-server, started here and stopped on exit):
#                          beside erl_call and rabbitmq-diagnostics, its RSS, and what the
#                          distribution client costs in bytes. The full run does it too.
#
# Everything talks to loopback only: fake-rancher-metadata on 127.0.0.1, dnsmasq on 127.0.0.1,
# proxies unset. Timing figures are ratios measured side by side in one hyperfine run, because the
# machine may be busy; nothing here fails on a time, only the --quick size check fails the run.
#
# Knobs (environment): RUNS (hyperfine runs per command, default 500), WARMUP (default 30),
# HERD (boots at once, default 100), READY_RUNS (default 20), READY_AFTER (default 1s),
# SKIP_BLOAT=1 (skip cargo-bloat, which needs a second, unstripped build); PROBE_RUNS (default 500)
# and DIAG_RUNS (the least number of runs beside rabbitmq-diagnostics, 0.3 s each; default 30;
# each command there also runs for at least 3 s, so the probe gets hundreds); DIST_BASE (the
# commit before src/dist, default ae81933); AGAINST (another rancher-boot binary, e.g. a branch's
# build: its `rb-none` and `rb-local` boots join the one hyperfine run as `vs-none` and `vs-local`,
# and the ratios show what the change costs side by side).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
bench=$root/bench
out=$bench/out
target=x86_64-unknown-linux-musl # the one that is timed
# Every target is built and size-checked; aarch64 is linked by rust-lld (.cargo/config.toml).
targets=("$target" aarch64-unknown-linux-musl)
bin=$root/target/$target/release
size_budget=1572864 # 1.5 MiB, docs/spec.md section 13

quick=false
probe_only=false
case "${1:-}" in
    --quick) quick=true ;;
    --probe) probe_only=true ;;
    "") ;;
    *) echo "usage: bench/run.sh [--quick | --probe]" >&2; exit 64 ;;
esac

step() { printf '\n==> %s\n' "$*"; }

# Only loopback: no proxy may redirect busybox wget (or anything else) elsewhere.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
# What a user's container has: no backtrace capture, default log settings.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE RUST_LOG RANCHER_BOOT_LOG
for v in $(env | sed -n 's/^\(RANCHER_BOOT_[A-Z_]*\)=.*/\1/p; s/^\(RANCHER_METADATA_URL\)=.*/\1/p'); do unset "$v"; done
# Nor a platform's signal (--source auto would follow it), nor an inherited peer query.
unset FLY_APP_NAME FLY_PRIVATE_IP ECS_CONTAINER_METADATA_URI_V4 ECS_CONTAINER_METADATA_URI NOMAD_ALLOC_ID \
    KUBERNETES_SERVICE_HOST DNS_CLUSTER_QUERY

mkdir -p "$out"

step "build (release, static, ${targets[*]})"
if command -v rustup >/dev/null; then rustup target add "${targets[@]}" >/dev/null 2>&1 || true; fi
cargo build --release --locked "${targets[@]/#/--target=}" --bins
rb=$bin/rancher-boot
fake=$bin/fake-rancher-metadata

step "size"
declare -A sizes=() verdicts=()
over=false
for t in "${targets[@]}"; do
    b=$root/target/$t/release/rancher-boot
    echo "$t: $(file -b "$b" 2>/dev/null || echo "(file not installed)")"
    case $t in x86_64-*) machine="Advanced Micro Devices X86-64" ;; aarch64-*) machine=AArch64 ;; esac
    if ! readelf -h "$b" | grep -q "Machine: *$machine\$"; then
        echo "FAIL: $b is not a $machine binary" >&2
        exit 1
    fi
    if readelf -l "$b" | grep -q INTERP; then
        echo "FAIL: $b has a program interpreter: not static" >&2
        exit 1
    fi
    if readelf -S "$b" | grep -q '\.symtab'; then
        echo "FAIL: $b is not stripped (the release profile strips it)" >&2
        exit 1
    fi
    sizes[$t]=$(stat -c %s "$b")
    echo "$t: rancher-boot: ${sizes[$t]} bytes ($(awk -v s="${sizes[$t]}" 'BEGIN{printf "%.2f", s/1048576}') MiB; budget $size_budget)"
    echo "$t: fake-rancher-metadata: $(stat -c %s "$root/target/$t/release/fake-rancher-metadata") bytes"
    verdicts[$t]=ok
    if ((sizes[$t] > size_budget)); then
        verdicts[$t]="OVER BUDGET by $((sizes[$t] - size_budget)) bytes"
        echo "FAIL: $t rancher-boot is ${sizes[$t]} bytes, over its budget of $size_budget bytes (1.5 MiB)" >&2
        over=true
    fi
done
size=${sizes[$target]}
size_verdict=${verdicts[$target]}
fake_size=$(stat -c %s "$fake")
# --quick (CI) fails on it; the full run goes on and reports every figure.
if $quick; then
    $over && exit 1
    echo "size budget: ok (${targets[*]})"
    exit 0
fi

step "install packages"
# erlang-nox (erl, epmd, erl_call) and rabbitmq-server: the probe's section. .ci/apt-install keeps
# rabbitmq-server's service from starting: this script starts its own RabbitMQ.
"$root/.ci/apt-install" hyperfine busybox-static dnsmasq-base time file binutils procps musl-tools \
    erlang-nox rabbitmq-server

step "helper programs (bench/tools, std only)"
tools=$out/tools
mkdir -p "$tools"
rustc --edition 2021 -C opt-level=s -C panic=abort -C strip=symbols --target "$target" \
    -o "$tools/exec-floor" "$bench/tools/exec_floor.rs"
rustc --edition 2021 -C opt-level=s -C panic=abort -C strip=symbols --target "$target" \
    -o "$tools/request-floor" "$bench/tools/request_floor.rs"
musl-gcc -static -Os -o "$tools/request-floor-c" "$bench/tools/request_floor.c"
rustc --edition 2021 -O --target "$target" -o "$tools/herd" "$bench/tools/herd.rs"

# ---------------------------------------------------------------------------------------------
# Services on loopback, stopped by the trap.
pids=()
rabbit_pid_file=""
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    # The RabbitMQ this script started (it runs as the rabbitmq user, detached): stopped, and
    # waited for through its pid file.
    if [[ -n $rabbit_pid_file ]]; then timeout 90 rabbitmqctl -q stop "$rabbit_pid_file" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

probe_section() {
    step "probe: rancher-boot probe against a real Erlang VM and a real RabbitMQ (issue 17)"
    local erl_call
    erl_call=$(ls /usr/lib/erlang/lib/erl_interface-*/bin/erl_call | tail -n1)
    local probe_runs=${PROBE_RUNS:-500} diag_runs=${DIAG_RUNS:-30} warm=${WARMUP:-30}
    local cookie=rbbench-Erl4ngC00kie vm_node="rbbench_$$@127.0.0.1"
    local cookie_file=$out/probe-cookie
    printf '%s' "$cookie" >"$cookie_file"
    chmod 400 "$cookie_file"
    # A plain VM (long names, on loopback), killed by the trap.
    erl -noshell -name "$vm_node" -setcookie "$cookie" -kernel inet_dist_use_interface '{127,0,0,1}' \
        -eval 'receive after infinity -> ok end' >"$out/probe-vm.log" 2>&1 &
    pids+=("$!")
    # RabbitMQ: node rabbit@<short host name>, its cookie in its home, AMQP on loopback only.
    local host rabbit rabbit_cookie=/var/lib/rabbitmq/.erlang.cookie
    host=$(hostname -s)
    rabbit="rabbit@$host"
    if epmd -names 2>/dev/null | grep -q '^name rabbit at port '; then
        echo "FAIL: a node named rabbit already runs here (a rabbitmq-server service?): stop it first" >&2
        exit 1
    fi
    rabbit_pid_file=/var/lib/rabbitmq/mnesia/$rabbit.pid
    rm -f "$rabbit_pid_file"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 rabbitmq-server -detached
    local t0=$EPOCHREALTIME i
    for ((i = 0; i < 600; i++)); do
        "$rb" probe --node "$rabbit" --cookie-file "$rabbit_cookie" --app rabbit 2>/dev/null && break
        sleep 0.2
    done
    "$rb" probe --node "$rabbit" --cookie-file "$rabbit_cookie" --app rabbit \
        || { echo "FAIL: RabbitMQ did not come up:" >&2; tail -n 20 "/var/log/rabbitmq/$rabbit.log" >&2; exit 1; }
    awk -v t0="$t0" -v t="$EPOCHREALTIME" 'BEGIN { printf "RabbitMQ %s ready (probe --app rabbit) after %.1f s\n", "'"$rabbit"'", t - t0 }'
    for ((i = 0; i < 100; i++)); do "$rb" probe --node "$vm_node" --cookie-file "$cookie_file" 2>/dev/null && break; sleep 0.1; done

    local p_vm="$rb probe --node $vm_node --cookie-file $cookie_file"
    local p_rmq="$rb probe --node $rabbit --cookie-file $rabbit_cookie"
    local ec="$erl_call -name $vm_node -c $cookie -a 'erlang node []'"
    local diag_direct="env HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-diagnostics -q ping"

    step "probe sanity: each command answers"
    $p_vm --level epmd && $p_vm --level connect && $p_vm --level rpc && $p_rmq --app rabbit
    [[ $("$erl_call" -name "$vm_node" -c "$cookie" -a 'erlang node []') == "'$vm_node'" ]]
    rabbitmq-diagnostics -q ping
    $diag_direct

    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "commit: $(git -C "$root" rev-parse --short HEAD)$([[ -z $(git -C "$root" status --porcelain) ]] || echo ' (tree modified)')"
        echo "nproc: $(nproc); cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
        echo "erts: $(erl -noshell -eval 'io:format("~s", [erlang:system_info(version)]), halt().'), rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server), $("$rb" --version)"
        echo "loadavg before timing: $(cut -d' ' -f1-3 /proc/loadavg)"
    } | tee "$out/probe-machine.txt"

    step "probe ÷ erl_call, against the same plain VM (one hyperfine run, $probe_runs runs each)"
    hyperfine -N --warmup "$warm" --runs "$probe_runs" --style basic --export-csv "$out/probe-vm.csv" \
        -n probe-epmd "$p_vm --level epmd" \
        -n probe-connect "$p_vm --level connect" \
        -n probe-rpc "$p_vm --level rpc" \
        -n erl_call "$ec" | tee "$out/probe-vm.txt"

    step "probe --app rabbit beside rabbitmq-diagnostics -q ping, against the same RabbitMQ (at least $diag_runs runs each, and 3 s)"
    # rabbitmq-diagnostics as root goes through Debian's wrapper (su to the rabbitmq user);
    # diag-direct is the CLI itself, as a container running as that user would call it.
    hyperfine -N --warmup 3 --min-runs "$diag_runs" --style basic --export-csv "$out/probe-rmq.csv" \
        -n probe-app "$p_rmq --app rabbit" \
        -n probe-connect-rmq "$p_rmq --level connect" \
        -n diagnostics "rabbitmq-diagnostics -q ping" \
        -n diag-direct "$diag_direct" | tee "$out/probe-rmq.txt"
    echo "loadavg after timing: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/probe-machine.txt"

    # CSV: command,mean,stddev,median,user,system,min,max (seconds; user and system are means)
    awk -F, '
        FNR == 1 { next }
        { med[$1] = $4; min[$1] = $7; cpu[$1] = $5 + $6; order[++n] = $1 }
        END {
            printf "%-17s %10s %10s %12s\n", "command", "median_ms", "min_ms", "cpu_mean_ms"
            for (i = 1; i <= n; i++) { c = order[i]; printf "%-17s %10.3f %10.3f %12.3f\n", c, med[c]*1000, min[c]*1000, cpu[c]*1000 }
            printf "\nratios (median; min in brackets)                      target\n"
            printf "probe-connect / erl_call     %6.2f  [%5.2f]            <= 1.00\n", med["probe-connect"]/med["erl_call"], min["probe-connect"]/min["erl_call"]
            printf "probe-rpc     / erl_call     %6.2f  [%5.2f]            (the same work: a call through rex)\n", med["probe-rpc"]/med["erl_call"], min["probe-rpc"]/min["erl_call"]
            printf "probe-epmd    / erl_call     %6.2f  [%5.2f]\n", med["probe-epmd"]/med["erl_call"], min["probe-epmd"]/min["erl_call"]
            printf "diagnostics / probe-app, wall  %8.0f x [%5.0f x]         >= 300\n", med["diagnostics"]/med["probe-app"], min["diagnostics"]/min["probe-app"]
            printf "diagnostics / probe-app, cpu   %8.0f x                   >= 300 (user+sys, mean)\n", cpu["diagnostics"]/cpu["probe-app"]
            printf "diag-direct / probe-app, wall  %8.0f x [%5.0f x]         (no su: the CLI itself)\n", med["diag-direct"]/med["probe-app"], min["diag-direct"]/min["probe-app"]
            printf "diag-direct / probe-app, cpu   %8.0f x\n", cpu["diag-direct"]/cpu["probe-app"]
        }' "$out/probe-vm.csv" "$out/probe-rmq.csv" | tee "$out/probe-ratios.txt"

    step "probe: peak RSS (GNU time, %M KiB)"
    maxrss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n1; }
    {
        echo "probe --level epmd (VM): $(maxrss $p_vm --level epmd) KiB"
        echo "probe --level connect (VM): $(maxrss $p_vm --level connect) KiB"
        echo "probe --level rpc (VM): $(maxrss $p_vm --level rpc) KiB"
        echo "probe --app rabbit (RabbitMQ): $(maxrss $p_rmq --app rabbit) KiB"
        echo "erl_call -a 'erlang node []' (VM): $(maxrss "$erl_call" -name "$vm_node" -c "$cookie" -a 'erlang node []') KiB"
        echo "rabbitmq-diagnostics -q ping: $(maxrss rabbitmq-diagnostics -q ping) KiB"
    } | tee "$out/probe-rss.txt"

    step "probe: what the distribution client costs (release binary at ${DIST_BASE:-ae81933}, before src/dist, and now)"
    local base=${DIST_BASE:-ae81933} before_src=$out/before-dist
    rm -rf "$before_src"
    mkdir -p "$before_src"
    git -C "$root" archive "$base" | tar -x -C "$before_src"
    (cd "$before_src" && CARGO_TARGET_DIR=$root/target/bench-before-dist \
        cargo build --release --locked --target "$target" --bin rancher-boot 2>&1 | tail -n1)
    local before_size now_size
    before_size=$(stat -c %s "$root/target/bench-before-dist/$target/release/rancher-boot")
    now_size=$(stat -c %s "$rb")
    {
        echo "rancher-boot at $base (before src/dist): $before_size bytes"
        echo "rancher-boot now: $now_size bytes ($(awk -v s="$now_size" 'BEGIN{printf "%.2f", s/1048576}') MiB; budget $size_budget: $size_verdict)"
        echo "the distribution client, probe and state file cost: $((now_size - before_size)) bytes"
    } | tee "$out/probe-size.txt"
    if [[ ${SKIP_BLOAT:-} != 1 ]]; then
        # Every crate's .text, before and now (unstripped copies of the same builds): what grew.
        if ! command -v cargo-bloat >/dev/null; then cargo install --locked cargo-bloat; fi
        (cd "$before_src" && CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=$root/target/bench-before-dist-bloat \
            cargo bloat --release --locked --target "$target" --bin rancher-boot --crates -n 0 \
            2>/dev/null >"$out/bloat-before-dist.txt")
        CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=$root/target/bench-bloat \
            cargo bloat --release --locked --target "$target" --bin rancher-boot --crates -n 0 \
            2>/dev/null >"$out/bloat-all.txt"
        # cargo bloat's sizes (e.g. 4.4KiB, 880B) in bytes, crate by crate: the rows that changed,
        # largest change first, then the whole .text.
        {
            printf 'cargo bloat, .text by crate (bytes, as rounded by cargo bloat), at %s and now\n' "$base"
            printf '%-16s %9s %9s %9s\n' crate before now change
            awk '
                function bytes(v) { if (v ~ /MiB$/) return v * 1048576; if (v ~ /KiB$/) return v * 1024; return v + 0 }
                { f = FILENAME == ARGV[1] ? "b" : "a" }
                $3 ~ /B$/ && $4 != "" && $5 == "" { size[f, $4] = bytes($3); seen[$4] = 1 }
                $5 == "section" { text[f] = bytes($3) }
                END {
                    for (c in seen) { d = size["a", c] - size["b", c]; if (d > 50 || d < -50 || c == "md5")
                        printf "%-16s %9d %9d %+9d\n", c, size["b", c], size["a", c], d }
                    printf "%-16s %9d %9d %+9d\n", "(all) .text", text["b"], text["a"], text["a"] - text["b"] > "/dev/stderr"
                }' "$out/bloat-before-dist.txt" "$out/bloat-all.txt" 2>"$out/bloat-text-total.txt" | sort -k4,4gr
            cat "$out/bloat-text-total.txt"
        } | tee -a "$out/probe-size.txt"
    fi
    rm -f "$cookie_file"
}
# The probe's section needs none of the boot's services: with --probe, it is all that runs.
if $probe_only; then
    probe_section
    echo
    cat "$out/probe-machine.txt" "$out/probe-ratios.txt" "$out/probe-rss.txt" "$out/probe-size.txt" | tee "$out/probe-summary.txt"
    exit 0
fi

# The container every caller from 127.0.0.1 is (rancher-boot refuses a loopback primary_ip).
answers=$out/answers.json
cat >"$answers" <<'EOF'
{
  "127.0.0.1": {
    "container": {"primary_ip": "10.42.96.65", "name": "demo-hello-1", "service_name": "hello",
                  "stack_name": "demo", "ips": ["10.42.96.65"], "state": "running",
                  "health_state": "healthy", "labels": {}},
    "service": {"name": "hello", "scale": 4, "containers": []},
    "stack": {"name": "demo", "services": ["hello"]}
  }
}
EOF

# start_fake LOG ARGS...: starts fake-rancher-metadata on a free loopback port; sets fake_pid and
# fake_url.
start_fake() {
    local log=$1
    shift
    : >"$log" # empty before the start: never read the previous server's address
    "$fake" --listen 127.0.0.1:0 --answers "$answers" "$@" 2>"$log" &
    fake_pid=$!
    pids+=("$fake_pid")
    local i addr=""
    for ((i = 0; i < 200; i++)); do
        addr=$(sed -n 's/^fake-rancher-metadata: listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$log" | head -n1)
        [[ -n $addr ]] && break
        sleep 0.01
    done
    if [[ -z $addr ]]; then
        echo "FAIL: fake-rancher-metadata did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
    fake_addr=$addr
    fake_url="http://$addr/2016-07-29"
}

stop_fake() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# dnsmasq answering the peer query with four addresses (one of them our own, which is excluded).
peer_query=hello.bench.test
hosts=$out/peers.hosts
printf '%s %s\n' 10.42.0.11 "$peer_query" 10.42.0.12 "$peer_query" 10.42.0.13 "$peer_query" \
    10.42.96.65 "$peer_query" >"$hosts"
dns_port=""
for ((try = 0; try < 20; try++)); do
    port=$((20000 + RANDOM % 30000))
    dnsmasq --keep-in-foreground --port="$port" --listen-address=127.0.0.1 --bind-interfaces \
        --no-resolv --no-hosts --no-poll --addn-hosts="$hosts" --pid-file= --user=root \
        --log-facility=- >"$out/dnsmasq.log" 2>&1 &
    dns_pid=$!
    sleep 0.3
    if kill -0 "$dns_pid" 2>/dev/null; then
        pids+=("$dns_pid")
        dns_port=$port
        break
    fi
    wait "$dns_pid" 2>/dev/null || true
done
if [[ -z $dns_port ]]; then
    echo "FAIL: dnsmasq did not start:" >&2
    cat "$out/dnsmasq.log" >&2
    exit 1
fi
dns_server=127.0.0.1:$dns_port

start_fake "$out/fake.log"
url=$fake_url
addr=$fake_addr
echo "fake-rancher-metadata at $url, dnsmasq at $dns_server answering $peer_query"

# The commands under test.
# --source auto (the default) knows Rancher from the given URL before any packet (detection's step
# 5, after reading the variables of steps 1-4); rb-named is the same boot with the source named.
cmd_none="$rb -q --metadata-url $url --peers none -- /bin/true"
cmd_named="$rb -q --source rancher --metadata-url $url --peers none -- /bin/true"
cmd_local="$rb -q --source local --ip 10.42.96.65 --service hello --peers none -- /bin/true"
cmd_request_floor="$tools/request-floor $addr /bin/true"
cmd_request_floor_c="$tools/request-floor-c $addr /bin/true"
cmd_dns="$rb -q --metadata-url $url --dns-server $dns_server --peer-query $peer_query -- /bin/true"
against=()
if [[ -n ${AGAINST:-} ]]; then
    [[ -x $AGAINST ]] || { echo "AGAINST=$AGAINST is not an executable" >&2; exit 64; }
    against=(-n vs-none "${cmd_none/#$rb/$AGAINST}" -n vs-local "${cmd_local/#$rb/$AGAINST}")
fi
cmd_script="sh -c 'export RANCHER_IP=\$(busybox wget -qO- $url/self/container/primary_ip); export RANCHER_SERVICE_NAME=\$(busybox wget -qO- $url/self/service/name); exec /bin/true'"

step "sanity: each command does its job"
"$rb" --metadata-url "$url" --dns-server "$dns_server" --peer-query "$peer_query" --node-basename hello print-env \
    | tee "$out/print-env.txt"
grep -q "^export NODE_NAME='hello@10.42.96.65'$" "$out/print-env.txt"
grep -q "^export PEER_IPS='10.42.0.11 10.42.0.12 10.42.0.13'$" "$out/print-env.txt"
sh -c "export RANCHER_IP=\$(busybox wget -qO- $url/self/container/primary_ip); export RANCHER_SERVICE_NAME=\$(busybox wget -qO- $url/self/service/name); echo \"script: \$RANCHER_IP \$RANCHER_SERVICE_NAME\"" \
    | tee "$out/script.txt"
grep -qx 'script: 10.42.96.65 hello' "$out/script.txt"
eval "$cmd_none"
eval "$cmd_named"
eval "$cmd_dns"
eval "$cmd_local"
if [[ -n ${AGAINST:-} ]]; then eval "${against[1]}" && eval "${against[3]}"; fi
"$tools/request-floor" "$addr" /usr/bin/env | grep -qx 'NODE_NAME=hello@10.42.96.65'
"$tools/request-floor-c" "$addr" /usr/bin/env | grep -qx 'NODE_NAME=hello@10.42.96.65'


# ---------------------------------------------------------------------------------------------
step "machine"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "nproc: $(nproc)"
    echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
    echo "kernel: $(uname -srm)"
    echo "rustc: $(rustc --version)"
    echo "hyperfine: $(hyperfine --version)"
    echo "loadavg before timing: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"

step "boot overhead: side by side in one hyperfine run"
runs=${RUNS:-500}
warmup=${WARMUP:-30}
hyperfine -N --warmup "$warmup" --runs "$runs" --style basic \
    --export-json "$out/hyperfine.json" --export-csv "$out/hyperfine.csv" \
    -n floor '/bin/true' \
    -n exec-floor "$tools/exec-floor /bin/true" \
    -n request-floor-c "$cmd_request_floor_c" \
    -n request-floor "$cmd_request_floor" \
    -n rb-local "$cmd_local" \
    -n rb-none "$cmd_none" \
    -n rb-named "$cmd_named" \
    -n rb-dns "$cmd_dns" \
    "${against[@]}" \
    -n script "$cmd_script" | tee "$out/hyperfine.txt"
echo "loadavg after timing: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"

# CSV: command,mean,stddev,median,user,system,min,max (seconds)
ratios=$(awk -F, '
    NR == 1 { next }
    { name[NR] = $1; mean[$1] = $2; sd[$1] = $3; med[$1] = $4; min[$1] = $7; order[++n] = $1 }
    END {
        printf "%-11s %9s %9s %9s %9s\n", "command", "median_ms", "min_ms", "mean_ms", "stddev_ms"
        for (i = 1; i <= n; i++) { c = order[i]
            printf "%-11s %9.3f %9.3f %9.3f %9.3f\n", c, med[c]*1000, min[c]*1000, mean[c]*1000, sd[c]*1000 }
        printf "\nratios (median; min in brackets)             target\n"
        printf "rb-none / floor   %6.2f  [%5.2f]            <= 1.50\n", med["rb-none"]/med["floor"], min["rb-none"]/min["floor"]
        printf "rb-dns  / floor   %6.2f  [%5.2f]            <= 1.50\n", med["rb-dns"]/med["floor"], min["rb-dns"]/min["floor"]
        printf "rb-none / script  %6.2f  [%5.2f]            <= 0.25\n", med["rb-none"]/med["script"], min["rb-none"]/min["script"]
        printf "rb-dns  / script  %6.2f  [%5.2f]            <= 0.25\n", med["rb-dns"]/med["script"], min["rb-dns"]/min["script"]
        printf "exec-floor/floor  %6.2f  [%5.2f]            (any static wrapper)\n", med["exec-floor"]/med["floor"], min["exec-floor"]/min["floor"]
        printf "req-floor-c/floor %6.2f  [%5.2f]            (any wrapper that asks metadata, C)\n", med["request-floor-c"]/med["floor"], min["request-floor-c"]/min["floor"]
        printf "req-floor-c/script%6.2f  [%5.2f]\n", med["request-floor-c"]/med["script"], min["request-floor-c"]/min["script"]
        printf "req-floor/floor   %6.2f  [%5.2f]            (the same in Rust with std)\n", med["request-floor"]/med["floor"], min["request-floor"]/min["floor"]
        printf "req-floor/script  %6.2f  [%5.2f]\n", med["request-floor"]/med["script"], min["request-floor"]/min["script"]
        printf "rb-none/req-floor-c %4.2f  [%5.2f]            (rancher-boot over the least any program could cost)\n", med["rb-none"]/med["request-floor-c"], min["rb-none"]/min["request-floor-c"]
        printf "rb-none/req-floor %6.2f  [%5.2f]            (rancher-boot over the least a Rust std program could cost)\n", med["rb-none"]/med["request-floor"], min["rb-none"]/min["request-floor"]
        printf "rb-local/floor    %6.2f  [%5.2f]            (no network)\n", med["rb-local"]/med["floor"], min["rb-local"]/min["floor"]
        printf "rb-none/req-floor-c %4.2f  [%5.2f]            <= 1.40 (docs/spec.md section 13 as restated)\n", med["rb-none"]/med["request-floor-c"], min["rb-none"]/min["request-floor-c"]
        printf "rb-none/floor     %6.2f  [%5.2f]            <= 2.00 (docs/spec.md section 13 as restated)\n", med["rb-none"]/med["floor"], min["rb-none"]/min["floor"]
        printf "auto - named  %+8.3f ms [%+.3f]           <= +0.100 (rb-none, --source auto, over rb-named)\n", (med["rb-none"]-med["rb-named"])*1000, (min["rb-none"]-min["rb-named"])*1000
        if ("vs-none" in med) {
            printf "\nAGAINST, the other binary (vs-*) beside this one (rb-*)\n"
            printf "vs-none/req-floor-c %4.2f  [%5.2f]            <= 1.40\n", med["vs-none"]/med["request-floor-c"], min["vs-none"]/min["request-floor-c"]
            printf "vs-none - rb-none %+7.3f ms [%+.3f]\n", (med["vs-none"]-med["rb-none"])*1000, (min["vs-none"]-min["rb-none"])*1000
            printf "vs-local - rb-local %+5.3f ms [%+.3f]\n", (med["vs-local"]-med["rb-local"])*1000, (min["vs-local"]-min["rb-local"])*1000
        }
    }' "$out/hyperfine.csv")
echo "$ratios" | tee "$out/ratios.txt"

step "--source auto over a named source, when the platform is known from its variables (target <= 0.1 ms)"
# Each pair differs only in --source: auto walks docs/platforms.md's steps up to the platform's own
# (environment lookups; Kubernetes also reads the service-account file); the named source starts
# there. ECS is left out: its detection makes the one request that identifying then reuses, so
# auto and named send the same requests.
auto_env_k8s="env KUBERNETES_SERVICE_HOST=10.96.0.1 POD_IP=10.42.96.65 POD_NAMESPACE=bench"
auto_env_fly="env FLY_APP_NAME=hello FLY_PRIVATE_IP=fdaa:2:686c:a7b:465:821d:76c3:2"
auto_env_nomad="env NOMAD_ALLOC_ID=5b1e9b3c NOMAD_GROUP_NAME=hello NOMAD_ALLOC_IP_epmd=10.42.96.65"
auto_tail="-q --service hello --peers none -- /bin/true"
for platform in kubernetes fly nomad; do
    case $platform in kubernetes) e=$auto_env_k8s ;; fly) e=$auto_env_fly ;; nomad) e=$auto_env_nomad ;; esac
    $e "$rb" --source auto --node-basename hello print-env | grep -q "^export RANCHER_BOOT_PLATFORM='$platform'$" \
        || { echo "FAIL: --source auto does not find $platform from its variables" >&2; exit 1; }
done
hyperfine -N --warmup "$warmup" --runs "$runs" --style basic --export-csv "$out/auto.csv" \
    -n k8s-named "$auto_env_k8s $rb --source kubernetes $auto_tail" -n k8s-auto "$auto_env_k8s $rb --source auto $auto_tail" \
    -n fly-named "$auto_env_fly $rb --source fly $auto_tail" -n fly-auto "$auto_env_fly $rb --source auto $auto_tail" \
    -n nomad-named "$auto_env_nomad $rb --source nomad $auto_tail" -n nomad-auto "$auto_env_nomad $rb --source auto $auto_tail" \
    | tee "$out/auto.txt"
awk -F, 'NR > 1 { med[$1] = $4; min[$1] = $7 } END {
    printf "--source auto - named (median; min in brackets), target <= 0.100 ms\n"
    split("k8s fly nomad", p, " ")
    for (i = 1; i <= 3; i++)
        printf "%-6s %+7.3f ms [%+7.3f]\n", p[i], (med[p[i] "-auto"] - med[p[i] "-named"]) * 1000, (min[p[i] "-auto"] - min[p[i] "-named"]) * 1000
    }' "$out/auto.csv" | tee "$out/auto-summary.txt"

step "peak RSS of one boot (/usr/bin/time -v; ru_maxrss survives exec, so /bin/true alone is shown too)"
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p'; }
{
    echo "rb-dns  -- /bin/true: $(rss $cmd_dns) KiB"
    echo "rb-none -- /bin/true: $(rss $cmd_none) KiB"
    echo "rb-dns  -- exec-floor (static, tiny): $(rss "$rb" -q --metadata-url "$url" --dns-server "$dns_server" --peer-query "$peer_query" -- "$tools/exec-floor" /bin/true) KiB"
    echo "/bin/true alone: $(rss /bin/true) KiB"
    echo "exec-floor /bin/true alone: $(rss "$tools/exec-floor" /bin/true) KiB"
} | tee "$out/rss.txt"

step "${HERD:-100} boots at once against one fake-rancher-metadata"
herd_n=${HERD:-100}
start_fake "$out/fake-herd.log"
herd_url=$fake_url
herd_status=0
"$tools/herd" "$herd_n" "$rb" -q --metadata-url "$herd_url" --dns-server "$dns_server" \
    --peer-query "$peer_query" -- /bin/true >"$out/herd.txt" || herd_status=$?
stop_fake "$fake_pid"
herd_requests=$(grep -c ' GET ' "$out/fake-herd.log" || true)
herd_404=$(grep -c ' 404$' "$out/fake-herd.log" || true)
echo "$(tail -n1 "$out/herd.txt") metadata_requests=$herd_requests metadata_404=$herd_404" | tee "$out/herd-summary.txt"
if ((herd_status != 0)); then echo "WARNING: some of the $herd_n boots failed" >&2; fi

step "readiness: metadata answers 404 until T = first request + ${READY_AFTER:-1s}; time from T to the exec"
ready_runs=${READY_RUNS:-20}
ready_after=${READY_AFTER:-1s}
ready_s=$(awk -v d="$ready_after" 'BEGIN{ if (d ~ /ms$/) { sub(/ms$/, "", d); print d/1000 } else { sub(/s$/, "", d); print d+0 } }')
: >"$out/readiness.txt"
for ((i = 1; i <= ready_runs; i++)); do
    start_fake "$out/fake-ready.log" --not-found-for "$ready_after"
    # T is ready_s after the first request, and the first request is after t0: so T >= t0 +
    # ready_s, and the figure below is an upper bound (it also counts rancher-boot's own start,
    # about a millisecond, and the program's exec: `date` prints after it has been exec'd).
    t0=$EPOCHREALTIME
    t_exec=$("$rb" -q --metadata-url "$fake_url" --peers none --timeout 30s -- /bin/date +%s.%N 2>"$out/ready-boot.log") || { echo "FAIL: boot $i did not reach the exec:" >&2; tail -n 5 "$out/ready-boot.log" "$out/fake-ready.log" >&2; exit 1; }
    stop_fake "$fake_pid"
    attempts=$(grep -c ' GET ' "$out/fake-ready.log" || true)
    awk -v t0="$t0" -v te="$t_exec" -v d="$ready_s" -v a="$attempts" \
        'BEGIN { printf "%.1f %d\n", (te - t0 - d) * 1000, a }' >>"$out/readiness.txt"
done
sort -n "$out/readiness.txt" | awk '{ ms[NR] = $1; att += $2 } END {
    n = NR
    printf "runs=%d T_to_exec_ms: min=%.1f p50=%.1f p90=%.1f max=%.1f (target <= 250) mean_metadata_requests=%.1f\n",
        n, ms[1], ms[int((n + 1) / 2)], ms[int(0.9 * n + 0.5)], ms[n], att / n }' | tee "$out/readiness-summary.txt"

probe_section

if [[ ${SKIP_BLOAT:-} != 1 ]]; then
    step "what each crate contributes (cargo bloat on an unstripped copy of the same build)"
    if ! command -v cargo-bloat >/dev/null; then cargo install --locked cargo-bloat; fi
    CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=$root/target/bench-bloat \
        cargo bloat --release --locked --target "$target" --bin rancher-boot --crates -n 20 \
        2>/dev/null | tee "$out/bloat.txt"
fi

step "summary"
{
    cat "$out/machine.txt"
    echo
    echo "size: rancher-boot $size bytes (budget $size_budget: $size_verdict), fake-rancher-metadata $fake_size bytes"
    echo "size aarch64: rancher-boot ${sizes[aarch64-unknown-linux-musl]} bytes (budget $size_budget: ${verdicts[aarch64-unknown-linux-musl]})"
    echo
    cat "$out/ratios.txt"
    echo
    cat "$out/auto-summary.txt"
    echo
    cat "$out/rss.txt"
    echo
    echo "herd: $(cat "$out/herd-summary.txt")"
    echo "readiness: $(cat "$out/readiness-summary.txt")"
    echo
    cat "$out/probe-machine.txt" "$out/probe-ratios.txt" "$out/probe-rss.txt" "$out/probe-size.txt"
} | tee "$out/summary.txt"
