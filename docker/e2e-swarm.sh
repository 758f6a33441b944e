#!/usr/bin/env bash
# End-to-end on a real Docker Swarm: the example release as a swarm service, with no rancher-boot
# option in the service definition, clusters by itself. `docker swarm init` makes a single-node
# swarm (left again at the end, whatever happens); the service `hello` is on an overlay network
# with a subnet of its own and publishes a port, so each task has three interfaces: `ingress`,
# the overlay, and `docker_gwbridge` with the default route (the address `hostname -I` or a
# default-route guess would wrongly pick).
#
# It shows, and fails loudly when one does not hold:
#   1. 3 replicas, then 5, then 4: after each step every running task is hello@<its overlay
#      address>, the set of those addresses is exactly what `tasks.hello` resolves to, rancher-boot
#      exported RANCHER_BOOT_PLATFORM=swarm and DNS_CLUSTER_QUERY=tasks.hello, and every node
#      lists all the others within 10 s of the `docker service create`/`scale` command;
#   2. `docker service update --force` (a rolling restart: new containers, new addresses): the
#      mesh forms again under the new names;
#   2b. the mesh keeper (issue 20): the same service with the app's poller off (HELLO_POLLER=off)
#      and `--init --mesh` (RANCHER_BOOT_INIT, RANCHER_BOOT_MESH, an interval of 2 s): 3 → 5 → 4
#      mesh with no clustering code running in the app, and a task cut off the overlay (`docker
#      network disconnect`) is back in every node's nodes() after `docker network connect`;
#   3. the same release as a stack (docker/swarm-stack.yml, `docker stack deploy`): the service
#      is <stack>_hello, its 3 tasks are named and meshed the same way, the peer query is
#      tasks.<stack>_hello.
#   4. health (issue 17): the stack again with docker/swarm-stack-health.yml on top, whose health
#      check is `rancher-boot probe` with no option (that file says why it also gives the overlay's
#      subnet as --ip and the service: Swarm keeps a task that has a health check out of Docker's
#      DNS until it is healthy). The 3 tasks mesh, each exported RANCHER_BOOT_PLATFORM=swarm, and
#      every task becomes `healthy`; in one task, `docker exec`
#      runs `rancher-boot probe` at each level (silent, exit 0), `-v` says what it proved, `--app hello` passes and an
#      application that is not running fails naming it, and `rancher-boot print-env` with no
#      option names the boot's node (from the boot's state file). Then that task's VM is frozen
#      from the host (SIGSTOP to beam.smp, which is the container's PID 1: inside, PID 1 ignores
#      it): `probe --level epmd` still passes, `probe` fails with `timed out` within its 1 s; the
#      task turns `unhealthy`, Swarm replaces it (3 running tasks again, a new task), and the
#      mesh is whole again without the frozen node. The frozen VM is sent SIGCONT at the end,
#      whatever happens, if it still lives.
#   5. doctor (issue 18): `docker exec … rancher-boot doctor` in a task of the healthy stack exits
#      0 with every peer `ok`; then a rolling update gives one new task another cookie (and
#      pauses), and the doctor of a task with the stack's cookie exits 1 naming that task
#      `cookie`, with neither cookie in its output.
# Each figure (command to full mesh) is printed beside the nodes' boot time (container start to
# the application's start: rancher-boot, the release script, the VM); for 4, the seconds from the
# freeze to `unhealthy`, to the replacement's running, and to the whole mesh.
#
# Usage: docker/e2e-swarm.sh   (as root; refuses to run when this engine is already in a swarm)
# Environment: E2E_KEEP=1 keeps the swarm, service and network for inspection (leave it with
# `docker swarm leave --force`); E2E_IMAGES names the images (docker/e2e-lib.sh);
# E2E_SWARM_PORT is the published port (default 28080: an application port, never EPMD).
set -euo pipefail

RUN=rbswarm-$$
LABEL=rancher-boot-e2e=$RUN
TMP=$(mktemp -d /tmp/rancher-boot-e2e-swarm.XXXXXX)
# shellcheck source=docker/e2e-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e-lib.sh"

SERVICE=hello # tasks.hello: the name the checks and docs/swarm.md use
NET=$RUN
SUBNET=10.231.7.0/24 # the overlay's own, apart from ingress (10.0.0.0/24) and docker_gwbridge
SECRET=$RUN-cookie
PORT=${E2E_SWARM_PORT:-28080}  # an application port: never EPMD's 4369
MESH_DEADLINE=10     # seconds from the scale command (docs/spec.md section 13)
KEEPER_INTERVAL=2    # --mesh-interval of 2b: the example app's own poll interval
RESTART_DEADLINE=90  # seconds for a rolling restart of 4 tasks, one at a time, to mesh again
UNHEALTHY_DEADLINE=30 # seconds from the freeze to `unhealthy`: 2 failed checks, 2 s apart
REPLACE_DEADLINE=90  # seconds from the freeze to a new task running: stop grace 10 s, restart delay 5 s, boot
REMESH_DEADLINE=150  # seconds from the freeze to the whole mesh, without the frozen node
FROZEN_PID=          # the beam.smp this run stopped (host pid) and its start time: thaw() resumes it
FROZEN_START=
STACK=$RUN
HSTACK=${RUN}h # the stack with the health check (4.)
HEALTH_MESH_DEADLINE=60 # seconds from `docker stack deploy` with the health check to 3 healthy meshed tasks
dump_diagnostics() {
    docker service ps --no-trunc "$SERVICE" >&2 2>/dev/null || true
    dump_labelled_logs "label=com.docker.swarm.service.name=$SERVICE"
}

cleanup() {
    local status=$?
    thaw
    if [[ ${E2E_KEEP:-} == 1 ]]; then
        log "E2E_KEEP=1: keeping the swarm, service $SERVICE, network $NET and $TMP"
        return
    fi
    if [[ -n $SWARM_INITED ]]; then
        remove_services
        docker network rm "$RUN" >/dev/null 2>&1 || true
        docker secret rm "$SECRET" >/dev/null 2>&1 || true
        swarm_leave
    fi
    rm -rf "$TMP"
    exit $status
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# remove_services: the service and the stack, and wait (bounded) for their containers to go.
remove_services() {
    docker service rm hello >/dev/null 2>&1 || true
    docker stack rm "$STACK" "$HSTACK" >/dev/null 2>&1 || true
    local limit=$((${EPOCHREALTIME/./} + 30000000))
    while [[ -n $(docker ps -aq --filter label=com.docker.swarm.service.name=hello) ]] \
        || [[ -n $(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK") ]] \
        || [[ -n $(docker ps -aq --filter "label=com.docker.stack.namespace=$HSTACK") ]] \
        || docker network inspect "${STACK}_cluster" >/dev/null 2>&1; do # the next stack takes its subnet
        ((${EPOCHREALTIME/./} < limit)) || { log "warning: the service's containers are still there after 30 s"; return; }
        sleep 0.2
    done
}

# --- reading the service ------------------------------------------------------------------

# The running containers of the service, one `CONTAINER=OVERLAY-IP` per line.
tasks_now() {
    local c
    for c in $(docker ps -q --filter "label=com.docker.swarm.service.name=$SERVICE" --filter status=running); do
        printf '%s=%s\n' "$c" "$(docker inspect -f "{{with index .NetworkSettings.Networks \"$NET\"}}{{.IPAddress}}{{end}}" "$c")"
    done
}

# The addresses `tasks.hello` resolves to, as a task sees them (Docker's DNS at 127.0.0.11).
tasks_record() { docker exec "$1" getent ahostsv4 "tasks.$SERVICE" 2>/dev/null | awk '{ print $1 }' | sort -u; }

# converged N: N tasks run, each is hello@<its overlay address>, tasks.hello holds exactly
# their addresses, and each lists all the others. Sets TASKS (the pairs) when it holds.
converged() {
    local want=$1 pairs
    mapfile -t pairs < <(tasks_now)
    ((${#pairs[@]} == want)) || return 1
    local ips pair
    ips=$(printf '%s\n' "${pairs[@]#*=}" | sort)
    [[ $ips != *$'\n\n'* && -n ${ips%%$'\n'*} ]] || return 1 # every task has an overlay address
    [[ $(tasks_record "${pairs[0]%%=*}") == "$ips" ]] || return 1
    meshed "${pairs[@]}" || return 1
    TASKS=("${pairs[@]}")
}

# check_identity: for every task of TASKS, what rancher-boot exported and found.
check_identity() {
    local pair c ip platform query
    for pair in "${TASKS[@]}"; do
        c=${pair%%=*} ip=${pair#*=}
        platform=$(exported "$c" RANCHER_BOOT_PLATFORM)
        [[ $platform == swarm ]] || fail "task $c (hello@$ip): RANCHER_BOOT_PLATFORM is '$platform', not swarm"
        query=$(exported "$c" DNS_CLUSTER_QUERY)
        [[ $query == "tasks.$SERVICE" ]] || fail "task $c (hello@$ip): DNS_CLUSTER_QUERY is '$query', not tasks.$SERVICE"
        docker logs "$c" 2>&1 | grep "^rancher-boot: info: node hello@$ip[ ,]" | grep -q swarm \
            || fail "task $c: no info line naming hello@$ip and swarm: $(docker logs "$c" 2>&1 | grep -m1 'rancher-boot: info')"
    done
}

# check_interfaces CONTAINER IP: three interfaces besides lo, and the default route is not
# the overlay's: the situation where the default-route address names the node wrongly.
check_interfaces() {
    local pid links route
    pid=$(docker inspect -f '{{.State.Pid}}' "$1")
    links=$(nsenter -t "$pid" -n ip -o -4 addr show | awk '$2 != "lo" { print $2, $4 }')
    (($(wc -l <<<"$links") == 3)) || fail "task $1 has not 3 interfaces (ingress, overlay, gwbridge): $(echo $links)"
    route=$(nsenter -t "$pid" -n ip -4 route show default)
    local dev=${route#*dev }
    dev=${dev%% *}
    grep -q "^$dev $2/" <<<"$links" && fail "task $1: the default route is on the overlay ($route)"
    log "task interfaces: $(echo $links), default route on $dev: hello@$2 is the overlay address"
}

# step LABEL N START: wait for N meshed tasks within MESH_DEADLINE of START; record the figure
# with the boot time of the tasks started since START.
step() {
    local what=$1 n=$2 took pair boots=() b
    took=$(WAIT_FROM=$3 wait_until "$MESH_DEADLINE" "$what: $n tasks, each hello@<overlay IP> and in tasks.$SERVICE, all meshed" converged "$n")
    converged "$n" || fail "$what: lost the mesh just after it formed"
    check_identity
    for pair in "${TASKS[@]}"; do
        [[ -n ${SEEN[${pair%%=*}]:-} ]] && continue
        SEEN[${pair%%=*}]=1
        b=$(boot_seconds "${pair%%=*}") || fail "cannot read the boot time of ${pair%%=*}"
        boots+=("$b")
    done
    local boot="-"
    ((${#boots[@]})) && boot="$(max_of "${boots[@]}") s (slowest of ${#boots[@]} new)"
    timing "$what: full mesh of $n after" "$took s; boot $boot"
    log "nodes: $(printf '%s\n' "${TASKS[@]#*=}" | sort -t. -k4n | sed 's/^/hello@/' | tr '\n' ' ')"
}

main() {
    ensure_host_tools
    [[ $(docker info -f '{{.Swarm.LocalNodeState}}') == inactive ]] \
        || fail "this Docker engine is already part of a swarm: not touching it (docker swarm leave --force, if it is yours)"
    build_images

    local start=$EPOCHREALTIME
    swarm_init
    docker network create --driver overlay --subnet "$SUBNET" --label "$LABEL" "$NET" >/dev/null
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 | docker secret create --label "$LABEL" "$SECRET" - >/dev/null
    timing "docker swarm init, overlay network, secret" "$(since "$start") s"

    # The service definition: nothing of rancher-boot's but the cookie file (docs/swarm.md).
    declare -gA SEEN=()
    declare -ga TASKS=()
    start=$EPOCHREALTIME
    docker service create --detach --no-resolve-image --name "$SERVICE" --replicas 3 --network "$NET" \
        --publish "published=$PORT,target=4000" --label "$LABEL" \
        --secret "source=$SECRET,target=erlang_cookie,mode=0400" \
        --env RANCHER_BOOT_COOKIE_FILE=/run/secrets/erlang_cookie \
        --stop-grace-period 10s "$HELLO_IMAGE" >/dev/null || fail "docker service create failed"
    step "service create, 3 replicas" 3 "$start"
    check_interfaces "${TASKS[0]%%=*}" "${TASKS[0]#*=}"

    local n
    for n in 5 4; do
        start=$EPOCHREALTIME
        docker service scale --detach "$SERVICE=$n" >/dev/null 2>&1 || fail "docker service scale $SERVICE=$n failed"
        step "docker service scale $SERVICE=$n" "$n" "$start"
    done

    local before
    before=$(printf '%s\n' "${TASKS[@]}")
    start=$EPOCHREALTIME
    docker service update --detach --force "$SERVICE" >/dev/null || fail "docker service update --force failed"
    local took
    took=$(WAIT_FROM=$start wait_until "$RESTART_DEADLINE" "rolling restart: 4 new tasks meshed" restarted "$before")
    restarted "$before" || fail "rolling restart: lost the mesh just after it formed"
    check_identity
    timing "docker service update --force: 4 new tasks meshed after" "$took s"
    log "nodes: $(printf '%s\n' "${TASKS[@]#*=}" | sort -t. -k4n | sed 's/^/hello@/' | tr '\n' ' ')"

    # 2b. The mesh keeper: the app's poller off, rancher-boot as PID 1 connecting the VM's peers.
    check_mesh_keeper

    # 3. The same as a stack: service <stack>_hello on the stack's own overlay.
    remove_services
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$TMP/cookie"
    SERVICE=${STACK}_hello NET=${STACK}_cluster
    start=$EPOCHREALTIME
    HELLO_IMAGE=$HELLO_IMAGE HELLO_COOKIE_FILE=$TMP/cookie HELLO_PORT=$PORT \
        docker stack deploy --resolve-image never -c "$ROOT/docker/swarm-stack.yml" "$STACK" >"$TMP/deploy.log" 2>&1 \
        || { cat "$TMP/deploy.log" >&2; fail "docker stack deploy -c docker/swarm-stack.yml failed"; }
    step "docker stack deploy (docker/swarm-stack.yml), 3 replicas" 3 "$start"

    # 4. Health: the stack with `rancher-boot probe` as its health check, then a frozen VM.
    remove_services
    SERVICE=${HSTACK}_hello NET=${HSTACK}_cluster
    start=$EPOCHREALTIME
    HELLO_IMAGE=$HELLO_IMAGE HELLO_COOKIE_FILE=$TMP/cookie HELLO_PORT=$PORT \
        docker stack deploy --resolve-image never -c "$ROOT/docker/swarm-stack.yml" \
        -c "$ROOT/docker/swarm-stack-health.yml" "$HSTACK" >"$TMP/deploy.log" 2>&1 \
        || { cat "$TMP/deploy.log" >&2; fail "docker stack deploy -c docker/swarm-stack.yml -c docker/swarm-stack-health.yml failed"; }
    took=$(WAIT_FROM=$start wait_until "$HEALTH_MESH_DEADLINE" \
        "stack with the health check: 3 tasks healthy, each hello@<overlay IP> and in tasks.$SERVICE, all meshed" remeshed "")
    remeshed "" || fail "stack with the health check: lost the mesh just after it formed"
    timing "docker stack deploy with the health check: 3 healthy, meshed after" "$took s"
    local pair platform
    for pair in "${TASKS[@]}"; do
        platform=$(exported "${pair%%=*}" RANCHER_BOOT_PLATFORM)
        [[ $platform == swarm ]] || fail "health stack: task ${pair%%=*}: RANCHER_BOOT_PLATFORM is '$platform', not swarm"
    done
    log "nodes: $(printf '%s\n' "${TASKS[@]#*=}" | sort -t. -k4n | sed 's/^/hello@/' | tr '\n' ' ')"
    check_health

    # 5. Doctor: every peer ok in the healthy stack; then a task with another cookie is named.
    check_doctor

    printf '\n[%s] PASSED in %s s\n' "$RUN" "$(since "$T0")" >&2
    printf '  %s\n' "${TIMINGS[@]}" >&2
}

# restarted BEFORE: converged on 4 tasks none of which (container or address) is in BEFORE.
restarted() {
    converged 4 || return 1
    local pair old=$'\n'$1$'\n'
    for pair in "${TASKS[@]}"; do
        [[ $old == *$'\n'"${pair%%=*}="* || $old == *"=${pair#*=}"$'\n'* ]] && return 1
    done
    return 0
}

# --- 2b. the mesh keeper ---------------------------------------------------------------------

# lists_none NODE CONTAINER...: no CONTAINER's node lists NODE.
lists_none() {
    local node=$1 c
    shift
    for c in "$@"; do node_view "$c" | grep -qx "$node" && return 1; done
    return 0
}

check_mesh_keeper() {
    remove_services
    SEEN=()
    local start=$EPOCHREALTIME pair c n logs
    docker service create --detach --no-resolve-image --name "$SERVICE" --replicas 3 --network "$NET" \
        --publish "published=$PORT,target=4000" --label "$LABEL" \
        --secret "source=$SECRET,target=erlang_cookie,mode=0400" \
        --env RANCHER_BOOT_COOKIE_FILE=/run/secrets/erlang_cookie \
        --env HELLO_POLLER=off --env RANCHER_BOOT_INIT=1 --env RANCHER_BOOT_MESH=1 \
        --env "RANCHER_BOOT_MESH_INTERVAL=${KEEPER_INTERVAL}s" \
        --stop-grace-period 10s "$HELLO_IMAGE" >/dev/null || fail "docker service create (mesh keeper) failed"
    step "mesh keeper, poller off: service create, 3 replicas" 3 "$start"
    for pair in "${TASKS[@]}"; do
        c=${pair%%=*}
        [[ $(exported "$c" RANCHER_BOOT_MESH_KEEPER) == on ]] || fail "task $c: RANCHER_BOOT_MESH_KEEPER is not on"
        # The log read whole first: grep -q would end the pipe early, and pipefail call that a failure.
        logs=$(docker logs "$c" 2>&1)
        grep -qF "poller off (HELLO_POLLER=off)" <<<"$logs" || fail "task $c: the app's poller is not off"
        grep -qF "mesh keeper on (every ${KEEPER_INTERVAL}s)" <<<"$logs" || fail "task $c: no keeper in the info line"
    done
    for n in 5 4; do
        start=$EPOCHREALTIME
        docker service scale --detach "$SERVICE=$n" >/dev/null 2>&1 || fail "docker service scale $SERVICE=$n failed"
        step "mesh keeper: docker service scale $SERVICE=$n" "$n" "$start"
    done

    # A partition: one task off the overlay until the others drop it, then back.
    local cut=${TASKS[0]%%=*} ip=${TASKS[0]#*=} others=()
    for pair in "${TASKS[@]:1}"; do others+=("${pair%%=*}"); done
    docker network disconnect "$NET" "$cut" >/dev/null 2>&1 || fail "docker network disconnect $NET $cut failed"
    wait_until 120 "the others to drop hello@$ip after its network went (net_ticktime)" lists_none "hello@$ip" "${others[@]}" >/dev/null
    # Back with its old address: the node is named by it (a new one would name nobody).
    docker network connect --ip "$ip" "$NET" "$cut" >"$TMP/connect.log" 2>&1 \
        || { cat "$TMP/connect.log" >&2; fail "docker network connect --ip $ip $NET $cut failed"; }
    start=$EPOCHREALTIME
    local took
    # Swarm's DNS does not list an endpoint connected by hand in tasks.<service>: the check is the
    # mesh of the four (the returning node's keeper finds the others; theirs reconnect it).
    took=$(WAIT_FROM=$start wait_until 60 "hello@$ip back in every node's nodes() after its network returned" meshed "${TASKS[@]}")
    timing "mesh keeper (every ${KEEPER_INTERVAL}s): a healed partition whole again after" "$took s"
    remove_services
}

# --- 5. doctor ------------------------------------------------------------------------------

# cookie_of CONTAINER: its cookie secret's text.
cookie_of() { docker exec "$1" cat /run/secrets/erlang_cookie 2>/dev/null; }

# a_task_with COOKIE_FILE: a running, healthy task whose cookie is COOKIE_FILE's; sets ODD to it.
a_task_with() {
    local pair want pairs
    want=$(cat "$1")
    mapfile -t pairs < <(tasks_now)
    for pair in "${pairs[@]}"; do
        [[ $(cookie_of "${pair%%=*}") == "$want" ]] && health_is "${pair%%=*}" healthy && { ODD=$pair; return 0; }
    done
    return 1
}

check_doctor() {
    local c=${TASKS[0]%%=*} out rc=0 pair
    out=$(docker exec "$c" rancher-boot doctor 2>&1) || rc=$?
    ((rc == 0)) || fail "rancher-boot doctor in a healthy stack: exit $rc:"$'\n'"$out"
    for pair in "${TASKS[@]:1}"; do
        grep -q "^${pair#*=} hello@${pair#*=} ok: " <<<"$out" || fail "rancher-boot doctor: no ok line for ${pair#*=}:"$'\n'"$out"
    done
    grep -q '^summary   2 of 2 peers ok$' <<<"$out" || fail "rancher-boot doctor: summary:"$'\n'"$out"
    log "docker exec $c rancher-boot doctor (healthy stack): exit 0"
    sed 's/^/    /' <<<"$out" >&2

    # One task replaced by one with another cookie: a rolling update that pauses after it.
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$TMP/cookie2"
    docker secret create --label "$LABEL" "$RUN-cookie2" "$TMP/cookie2" >/dev/null
    docker service update --detach --update-parallelism 1 --update-delay 600s \
        --secret-rm "${HSTACK}_erlang_cookie" --secret-add "source=$RUN-cookie2,target=erlang_cookie,mode=0400" \
        "$SERVICE" >/dev/null
    local start=$EPOCHREALTIME took
    took=$(WAIT_FROM=$start wait_until "$HEALTH_MESH_DEADLINE" "a healthy task with another cookie" a_task_with "$TMP/cookie2")
    a_task_with "$TMP/cookie2"
    timing "a task with another cookie: healthy after" "$took s"
    local old="" pairs
    mapfile -t pairs < <(tasks_now)
    for pair in "${pairs[@]}"; do
        if [[ $(cookie_of "${pair%%=*}") == "$(cat "$TMP/cookie")" ]]; then old=$pair; break; fi
    done
    [[ -n $old ]] || fail "no task with the stack's cookie left"
    # tasks.<service> lists the new task once it is healthy: poll the doctor until it names it.
    wait_until 30 "the doctor of ${old%%=*} to name ${ODD#*=} cookie" doctor_names_cookie "${old%%=*}" "${ODD#*=}" >/dev/null
    log "docker exec ${old%%=*} rancher-boot doctor (a peer with another cookie): exit 1"
    sed 's/^/    /' <<<"$DOCTOR_OUT" >&2
    ! grep -qF -e "$(cat "$TMP/cookie")" -e "$(cat "$TMP/cookie2")" <<<"$DOCTOR_OUT" || fail "the doctor printed a cookie"
}

# doctor_names_cookie CONTAINER IP: CONTAINER's doctor exits 1 naming IP's peer `cookie`.
doctor_names_cookie() {
    local rc=0
    DOCTOR_OUT=$(docker exec "$1" rancher-boot doctor 2>&1) || rc=$?
    ((rc == 1)) && grep -q "^$2 hello@$2 cookie: .*check RELEASE_COOKIE/--cookie-file on both" <<<"$DOCTOR_OUT"
}

# --- 4. health ------------------------------------------------------------------------------

# health CONTAINER: its health status (starting, healthy, unhealthy); empty when it has none.
health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1" 2>/dev/null; }

# health_is CONTAINER STATUS
health_is() { [[ $(health "$1") == "$2" ]]; }

# last_health_output CONTAINER: the exit code and output of its latest health check.
last_health_output() {
    docker inspect -f '{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{"\n"}}{{end}}' "$1" 2>/dev/null \
        | grep -v '^$' | tail -1
}

# all_healthy N: N running tasks, each `healthy`.
all_healthy() {
    local pairs pair
    mapfile -t pairs < <(tasks_now)
    ((${#pairs[@]} == $1)) || return 1
    for pair in "${pairs[@]}"; do health_is "${pair%%=*}" healthy || return 1; done
}

# in_task CONTAINER STATUS COMMAND...: `docker exec CONTAINER COMMAND...` must exit STATUS; its
# stdout goes to OUT, its stderr to ERR, the seconds it took (exec included) to TOOK.
in_task() {
    local c=$1 want=$2 rc=0 start=$EPOCHREALTIME
    shift 2
    docker exec "$c" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    TOOK=$(since "$start") OUT=$(<"$TMP/out") ERR=$(<"$TMP/err")
    ((rc == want)) || fail "docker exec $c $*: exit $rc, not $want; stdout: '$OUT'; stderr: '$ERR'"
}

# expect_line WHAT PATTERN TEXT: TEXT is exactly one line that matches the extended regex PATTERN.
expect_line() {
    [[ $3 != *$'\n'* ]] && grep -Eq -- "$2" <<<"$3" || fail "$1: not one line matching /$2/: '$3'"
    log "  $1: $3"
}

# proc_start PID: the start time of host process PID (field 22 of /proc/PID/stat).
proc_start() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086 # the fields after the command name, split on purpose
    set -- $stat
    echo "${20}"
}

# thaw: SIGCONT to the VM this run froze, if that very process (pid and start time) still lives.
thaw() {
    [[ -n $FROZEN_PID ]] || return 0
    if [[ $(proc_start "$FROZEN_PID") == "$FROZEN_START" ]]; then
        kill -CONT "$FROZEN_PID" 2>/dev/null && log "thawed the frozen VM (host pid $FROZEN_PID)"
    fi
    FROZEN_PID=
}

# replaced OLD-TASK: the service has 3 tasks meant to run, all running, none of them OLD-TASK.
replaced() {
    local lines line
    mapfile -t lines < <(docker service ps --no-trunc --filter desired-state=running \
        --format '{{.ID}} {{.CurrentState}}' "$SERVICE" 2>/dev/null)
    ((${#lines[@]} == 3)) || return 1
    for line in "${lines[@]}"; do
        [[ ${line%% *} != "$1" && ${line#* } == Running* ]] || return 1
    done
}

# remeshed GONE: converged on 3 tasks, every one healthy, container GONE not among them.
remeshed() {
    converged 3 || return 1
    [[ $'\n'$(printf '%s\n' "${TASKS[@]%%=*}")$'\n' != *$'\n'"$1"$'\n'* ]] || return 1
    all_healthy 3
}

check_health() {
    local took start
    # The probe by hand, in one task, with no option but its own.
    local c=${TASKS[0]%%=*} ip=${TASKS[0]#*=}
    local node=hello@$ip
    log "docker exec $c (node $node):"
    in_task "$c" 0 rancher-boot probe
    [[ -z $OUT$ERR ]] || fail "rancher-boot probe (healthy) printed something: '$OUT$ERR'"
    log "  rancher-boot probe: exit 0, silent ($TOOK s with docker exec)"
    in_task "$c" 0 rancher-boot probe --level rpc
    [[ -z $OUT$ERR ]] || fail "rancher-boot probe --level rpc (healthy) printed something: '$OUT$ERR'"
    log "  rancher-boot probe --level rpc: exit 0, silent ($TOOK s with docker exec)"
    local level
    for level in epmd connect rpc; do
        in_task "$c" 0 rancher-boot probe --level "$level" -v
        expect_line "rancher-boot probe --level $level -v" \
            "^rancher-boot: info: ${node//./\\.} is healthy \\($level\\) in [0-9.]+ ms\$" "$ERR"
    done
    in_task "$c" 0 rancher-boot probe -v
    expect_line "rancher-boot probe -v" "^rancher-boot: info: ${node//./\\.} is healthy \\(connect\\) in [0-9.]+ ms\$" "$ERR"
    in_task "$c" 0 rancher-boot probe --app hello -v
    expect_line "rancher-boot probe --app hello -v" \
        "^rancher-boot: info: ${node//./\\.} is healthy \\(rpc, hello running\\) in [0-9.]+ ms\$" "$ERR"
    in_task "$c" 1 rancher-boot probe --app no_such_app
    expect_line "rancher-boot probe --app no_such_app (exit 1)" \
        "^rancher-boot: ${node//./\\.}: application no_such_app not running \\(running: .*hello.*\\)\$" "$ERR"
    in_task "$c" 0 rancher-boot print-env
    grep -qx "export NODE_NAME='$node'" <<<"$OUT" \
        || fail "rancher-boot print-env does not name $node: $(grep NODE_NAME <<<"$OUT")"
    grep -q "as the boot chose it: /tmp/rancher-boot/state.json" <<<"$ERR" \
        || fail "rancher-boot print-env did not take the boot's state file: '$ERR'"
    log "  rancher-boot print-env: $(grep NODE_NAME= <<<"$OUT"); $ERR"
    # The probes were hidden nodes: the task still lists exactly the other two.
    converged 3 || fail "the mesh changed after the probes (a probe showed up in nodes()?)"
    log "  after the probes the mesh is unchanged: each node lists exactly the other two"

    # Freeze the VM of that task from the host. PID 1 of the container is what rancher-boot
    # exec'd; the release's script execs elixir, erl, erlexec and finally beam.smp.
    local task pid1 beam comm
    task=$(docker inspect -f '{{index .Config.Labels "com.docker.swarm.task.id"}}' "$c")
    pid1=$(docker inspect -f '{{.State.Pid}}' "$c")
    comm=$(cat "/proc/$pid1/comm")
    beam=$(pgrep -x beam.smp --ns "$pid1" --nslist pid) || fail "no beam.smp in the pid namespace of $c"
    [[ $beam != *$'\n'* ]] || fail "several beam.smp in $c: $(echo $beam)"
    log "task $task: container PID 1 is host pid $pid1 ($comm); beam.smp is host pid $beam"
    [[ $beam == "$pid1" ]] || log "note: beam.smp is not the container's PID 1"
    FROZEN_START=$(proc_start "$beam") FROZEN_PID=$beam
    start=$EPOCHREALTIME
    kill -STOP "$beam"
    log "kill -STOP $beam (state $(awk '{ print $3 }' "/proc/$beam/stat"))"

    # While frozen: EPMD (its own process) still answers; the handshake ends at the deadline.
    in_task "$c" 0 rancher-boot probe --level epmd
    log "  frozen: rancher-boot probe --level epmd: exit 0 ($TOOK s)"
    in_task "$c" 1 rancher-boot probe
    expect_line "frozen: rancher-boot probe (exit 1, $TOOK s)" "^rancher-boot: ${node//./\\.}: .*timed out" "$ERR"

    took=$(WAIT_FROM=$start wait_until "$UNHEALTHY_DEADLINE" "the frozen task $c unhealthy" health_is "$c" unhealthy)
    timing "frozen VM (SIGSTOP): task unhealthy after" "$took s"
    log "  its last health check: $(last_health_output "$c")"
    took=$(WAIT_FROM=$start wait_until "$REPLACE_DEADLINE" "Swarm replaces the unhealthy task" replaced "$task")
    timing "frozen VM: a new task running in its place after" "$took s"
    log "  the old task: $(docker service ps --no-trunc --filter "id=$task" --format '{{.CurrentState}}, error: {{.Error}}' "$SERVICE")"
    docker service ps --no-trunc --filter "id=$task" --format '{{.Error}}' "$SERVICE" | grep -q unhealthy \
        || fail "the old task $task did not end for being unhealthy"
    took=$(WAIT_FROM=$start wait_until "$REMESH_DEADLINE" "3 healthy tasks meshed again, without $c" remeshed "$c")
    remeshed "$c" || fail "lost the mesh just after it formed again"
    timing "frozen VM: the whole mesh again (3 healthy, new node in) after" "$took s"
    log "nodes: $(printf '%s\n' "${TASKS[@]#*=}" | sort -t. -k4n | sed 's/^/hello@/' | tr '\n' ' ')"
    log "  the frozen container: $(docker inspect -f '{{.State.Status}}, exit {{.State.ExitCode}}' "$c" 2>/dev/null || echo removed)"
    thaw
}

main "$@"
