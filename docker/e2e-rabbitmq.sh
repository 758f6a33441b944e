#!/usr/bin/env bash
# End-to-end: a RabbitMQ cluster on a real Docker Swarm, with rancher-boot as the entrypoint and
# no shell in the command. The image (docker/rabbitmq/Dockerfile) is Debian's rabbitmq-server
# on the project's Debian base; the stack (docker/rabbitmq/stack.yml) puts it on an overlay
# network, the cookie in a swarm secret, and `rancher-boot probe --app rabbit` as the
# healthcheck. `docker swarm init` makes a single-node swarm, left again at the end whatever
# happens.
#
# It shows, and fails loudly when one does not hold:
#   1. the stack's first task comes up healthy, alone (it starts the cluster);
#   2. `docker service scale` to 3: the three tasks form one cluster: `rabbitmqctl
#      cluster_status` on every task lists exactly the three nodes rabbit@<overlay address>
#      running, and every task is healthy by the probe;
#   3. `docker service scale` to 4: the new task joins the same cluster, seen from every task;
#   4. on every task: the VM runs as rabbitmq (PID 1 and its children), ~rabbitmq/.erlang.cookie
#      is 0400 and rabbitmq's, RABBITMQ_NODENAME is the node, RABBITMQ_USE_LONGNAME true and
#      HOME rabbitmq's. The stack names each node by its address in the overlay's subnet
#      (--ip CIDR, --source swarm): Swarm's DNS names a task with a healthcheck only once healthy.
#   5. the cookie's text is in no log: every task's output (`docker logs`) and every
#      healthcheck's output.
#
# Usage: docker/e2e-rabbitmq.sh   (as root; refuses to run when this engine is already in a swarm)
# Environment: E2E_KEEP=1 keeps the swarm and the stack for inspection (leave it with
# `docker swarm leave --force`); E2E_IMAGES names the images (docker/e2e-lib.sh).
set -euo pipefail

RUN=rbrabbit-$$
LABEL=rancher-boot-e2e=$RUN
TMP=$(mktemp -d /tmp/rancher-boot-e2e-rabbitmq.XXXXXX)
# shellcheck source=docker/e2e-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e-lib.sh"

RMQ_IMAGE=$E2E_IMAGES/rabbitmq:latest
STACK=$RUN
SERVICE=${STACK}_rabbitmq
NET=${STACK}_mq
FIRST_DEADLINE=120 # seconds from `docker stack deploy` to the first task healthy
SCALE_DEADLINE=180 # seconds from `docker service scale` to one cluster of all tasks
dump_diagnostics() {
    docker service ps --no-trunc "$SERVICE" >&2 2>/dev/null || true
    dump_labelled_logs "label=com.docker.swarm.service.name=$SERVICE"
}

cleanup() {
    local status=$?
    if [[ ${E2E_KEEP:-} == 1 ]]; then
        log "E2E_KEEP=1: keeping the swarm, stack $STACK and $TMP"
        return
    fi
    if [[ -n $SWARM_INITED ]]; then
        docker stack rm "$STACK" >/dev/null 2>&1 || true
        local limit=$((${EPOCHREALTIME/./} + 60000000))
        while [[ -n $(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK") ]]; do
            ((${EPOCHREALTIME/./} < limit)) || { log "warning: the stack's containers are still there after 60 s"; break; }
            sleep 0.2
        done
        swarm_leave
    fi
    rm -rf "$TMP"
    exit $status
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# --- reading the service ------------------------------------------------------------------

# The running containers of the service, one `CONTAINER=OVERLAY-IP` per line.
tasks_now() {
    local c
    for c in $(docker ps -q --filter "label=com.docker.swarm.service.name=$SERVICE" --filter status=running); do
        printf '%s=%s\n' "$c" "$(docker inspect -f "{{with index .NetworkSettings.Networks \"$NET\"}}{{.IPAddress}}{{end}}" "$c")"
    done
}

health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1" 2>/dev/null; }

# running_nodes CONTAINER IP: the running nodes of the cluster, as rabbitmqctl on that task
# sees them, one per line, sorted. rabbitmqctl runs as rabbitmq (HOME: the cookie rancher-boot
# wrote there) and is told the node's long name.
running_nodes() {
    docker exec -u rabbitmq "$1" rabbitmqctl -q -l -n "rabbit@$2" cluster_status --formatter json 2>/dev/null \
        | grep -o '"running_nodes":\[[^]]*\]' | grep -o 'rabbit@[0-9.]*' | sort
}

# clustered N: N tasks run, each healthy by the probe, each with an overlay address, and
# rabbitmqctl on every one of them lists exactly the N nodes rabbit@<address> running. Sets
# TASKS (the pairs) when it holds.
clustered() {
    local want=$1 pairs pair
    mapfile -t pairs < <(tasks_now)
    ((${#pairs[@]} == want)) || return 1
    for pair in "${pairs[@]}"; do
        [[ -n ${pair#*=} && $(health "${pair%%=*}") == healthy ]] || return 1
    done
    local expected
    expected=$(printf 'rabbit@%s\n' "${pairs[@]#*=}" | sort)
    # One task first (cheap while the cluster forms), then all of them.
    [[ $(running_nodes "${pairs[0]%%=*}" "${pairs[0]#*=}") == "$expected" ]] || return 1
    for pair in "${pairs[@]:1}"; do
        [[ $(running_nodes "${pair%%=*}" "${pair#*=}") == "$expected" ]] || return 1
    done
    TASKS=("${pairs[@]}")
}

# exported_to CONTAINER VARIABLE: what rancher-boot exported to the VM (PID 1 after the exec),
# read as rabbitmq: a root `docker exec` lacks CAP_SYS_PTRACE and may not read the environ of a
# process of another user.
exported_to() {
    docker exec -u rabbitmq "$1" cat /proc/1/environ 2>/dev/null | tr '\0' '\n' | sed -n "s/^$2=//p"
}

# check_tasks: for every task of TASKS, who runs the VM, the cookie file, the exported names.
check_tasks() {
    local pair c ip rabbitmq_uid users mode
    for pair in "${TASKS[@]}"; do
        c=${pair%%=*} ip=${pair#*=}
        rabbitmq_uid=$(docker exec "$c" id -u rabbitmq)
        users=$(docker exec "$c" sh -c 'for p in /proc/[0-9]*; do stat -c %u "$p"; done' 2>/dev/null | sort -u | tr '\n' ' ')
        # The processes of the container: the node's (rabbitmq) and this very `docker exec` (root).
        [[ $users == "0 $rabbitmq_uid " || $users == "$rabbitmq_uid 0 " ]] \
            || fail "task $c: processes run as uids '$users', not only rabbitmq ($rabbitmq_uid) and this exec"
        [[ $(docker exec "$c" stat -c %u /proc/1) == "$rabbitmq_uid" ]] || fail "task $c: PID 1 is not rabbitmq's"
        mode=$(docker exec "$c" stat -c '%a %U' /var/lib/rabbitmq/.erlang.cookie) \
            || fail "task $c: no /var/lib/rabbitmq/.erlang.cookie"
        [[ $mode == "400 rabbitmq" ]] || fail "task $c: ~rabbitmq/.erlang.cookie is '$mode', not '400 rabbitmq'"
        [[ $(exported_to "$c" RABBITMQ_NODENAME) == "rabbit@$ip" ]] \
            || fail "task $c: RABBITMQ_NODENAME is '$(exported_to "$c" RABBITMQ_NODENAME)', not rabbit@$ip"
        [[ $(exported_to "$c" RABBITMQ_USE_LONGNAME) == true ]] || fail "task $c: RABBITMQ_USE_LONGNAME is not true"
        [[ $(exported_to "$c" HOME) == /var/lib/rabbitmq ]] || fail "task $c: HOME is not rabbitmq's"
        [[ $(exported_to "$c" RANCHER_BOOT_PLATFORM) == swarm ]] || fail "task $c: RANCHER_BOOT_PLATFORM is not swarm"
    done
}

# step WHAT N START: one cluster of N tasks within SCALE_DEADLINE of START, checked.
step() {
    local what=$1 n=$2 took
    took=$(WAIT_FROM=$3 wait_until "$SCALE_DEADLINE" "$what: $n healthy tasks, one cluster of $n running nodes" clustered "$n")
    clustered "$n" || fail "$what: lost the cluster just after it formed"
    check_tasks
    timing "$what: one cluster of $n, all healthy, after" "$took s"
    log "cluster: $(printf 'rabbit@%s\n' "${TASKS[@]#*=}" | sort -t. -k4n | tr '\n' ' ')"
}

main() {
    ensure_host_tools
    [[ $(docker info -f '{{.Swarm.LocalNodeState}}') == inactive ]] \
        || fail "this Docker engine is already part of a swarm: not touching it (docker swarm leave --force, if it is yours)"
    build_images
    local start=$EPOCHREALTIME
    docker build -q --build-arg RANCHER_BOOT_IMAGE="$RANCHER_BOOT_IMAGE" --build-arg BASE_IMAGE="$BASE_IMAGE" \
        -t "$RMQ_IMAGE" "$ROOT/docker/rabbitmq" >/dev/null 2>"$TMP/build.log" \
        || { cat "$TMP/build.log" >&2; fail "docker build docker/rabbitmq failed"; }
    timing "RabbitMQ image (Debian's rabbitmq-server, apt inside the build)" "$(since "$start") s"

    # swarm_init asks again after the builds (another run may have made a swarm meanwhile).
    start=$EPOCHREALTIME
    swarm_init
    timing "docker swarm init" "$(since "$start") s"

    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$TMP/cookie"
    local cookie
    cookie=$(cat "$TMP/cookie")
    ((${#cookie} >= 20)) || fail "could not make a cookie"

    declare -ga TASKS=()
    start=$EPOCHREALTIME
    RMQ_IMAGE=$RMQ_IMAGE RMQ_COOKIE_FILE=$TMP/cookie \
        docker stack deploy --resolve-image never -c "$ROOT/docker/rabbitmq/stack.yml" "$STACK" >"$TMP/deploy.log" 2>&1 \
        || { cat "$TMP/deploy.log" >&2; fail "docker stack deploy -c docker/rabbitmq/stack.yml failed"; }
    local test
    test=$(docker service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck.Test}}' "$SERVICE")
    [[ $test == '["CMD","rancher-boot","probe","--app","rabbit"]' ]] || fail "the stack's healthcheck is $test"
    local took
    took=$(WAIT_FROM=$start wait_until "$FIRST_DEADLINE" "docker stack deploy: the first task healthy, a cluster of 1" clustered 1)
    check_tasks
    timing "docker stack deploy (docker/rabbitmq/stack.yml): first task healthy after" "$took s"

    local n
    for n in 3 4; do
        start=$EPOCHREALTIME
        docker service scale --detach "$SERVICE=$n" >/dev/null 2>&1 || fail "docker service scale $SERVICE=$n failed"
        step "docker service scale $SERVICE=$n" "$n" "$start"
    done

    # The cookie in no log: every task's output and every healthcheck's. Each container's own log
    # (on a single-node swarm, what `docker service logs` gathers; that command does not always
    # return on this engine, 20.10, once the output is read: seen hanging).
    local c leaks=0
    : >"$TMP/service.log"
    for c in $(docker ps -aq --filter "label=com.docker.swarm.service.name=$SERVICE"); do
        docker logs "$c" >>"$TMP/service.log" 2>&1 || true
        docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$c" >>"$TMP/service.log" 2>&1 || true
    done
    grep -qF "node rabbit@" "$TMP/service.log" || fail "the logs read hold no rancher-boot line: nothing was checked"
    grep -qF -- "$cookie" "$TMP/service.log" && leaks=1
    ((leaks == 0)) || fail "the cookie's text is in the logs"
    log "the cookie is in none of $(wc -l <"$TMP/service.log") log lines (tasks and healthchecks)"

    printf '\n[%s] PASSED in %s s\n' "$RUN" "$(since "$T0")" >&2
    printf '  %s\n' "${TIMINGS[@]}" >&2
}

main "$@"
