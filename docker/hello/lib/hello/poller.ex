defmodule Hello.Poller do
  @moduledoc """
  Clusters the way a stock Phoenix app with `dns_cluster` does: every few seconds resolve the
  query `DNS_CLUSTER_QUERY` (A and AAAA records) and `Node.connect/1` to `basename@ip` for each
  address, the address written as `:inet.ntoa/1` writes it, where `basename` is the part of
  `NODE_NAME` (else of `node()`) before the `@`. rancher-boot exports `DNS_CLUSTER_QUERY`: on
  Docker Swarm `tasks.<service>`, on Rancher and Compose the service name, whose records are the
  address of every healthy container of the service.

  Without `DNS_CLUSTER_QUERY` (a rancher-boot that does not export it yet), the blog's way:
  resolve `SERVICE_NAME`. Both are read once, at start, as `dns_cluster` reads its config.

  The poller also writes its own node name to `$HELLO_STATUS_DIR/self` and the connected nodes
  to `$HELLO_STATUS_DIR/nodes`, one per line (default directory `/tmp/hello`), so that a test
  reads the cluster's view cheaply with `docker exec CONTAINER cat /tmp/hello/nodes`;
  `started_ms` there is the wall-clock time at which the application started, in milliseconds
  since the epoch (a test's measure of boot time).

  `HELLO_POLLER=off` turns the connecting off (the status files are still written): the app then
  has no clustering code at all, as with rancher-boot's `--init --mesh` keeping the mesh from
  outside (issue 20).
  """
  use GenServer
  require Logger

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(_opts) do
    :ok = :net_kernel.monitor_nodes(true)

    state = %{
      query: System.get_env("DNS_CLUSTER_QUERY") || System.get_env("SERVICE_NAME"),
      basename: basename(),
      interval: String.to_integer(System.get_env("HELLO_POLL_INTERVAL_MS", "2000")),
      connects: System.get_env("HELLO_POLLER", "on") != "off",
      status_dir: System.get_env("HELLO_STATUS_DIR", "/tmp/hello")
    }

    Logger.info(
      "hello: node #{Node.self()}, query #{inspect(state.query)}, " <>
        "naming #{naming()}, " <>
        if(state.connects, do: "polling every #{state.interval} ms", else: "poller off (HELLO_POLLER=off)")
    )

    File.mkdir_p!(state.status_dir)
    write_atomically(Path.join(state.status_dir, "started_ms"), "#{System.os_time(:millisecond)}\n")
    write_atomically(Path.join(state.status_dir, "self"), "#{Node.self()}\n")
    write_status(state)
    send(self(), :poll)
    {:ok, state}
  end

  @impl true
  def handle_info(:poll, state) do
    if state.connects and Node.alive?() and state.query do
      for ip <- resolve(state.query),
          node = :"#{state.basename}@#{:inet.ntoa(ip)}",
          node != Node.self(),
          node not in Node.list() do
        Node.connect(node)
      end
    end

    write_status(state)
    Process.send_after(self(), :poll, state.interval)
    {:noreply, state}
  end

  def handle_info({:nodeup, node}, state) do
    Logger.info("hello: nodeup #{node}, nodes #{inspect(Enum.sort(Node.list()))}")
    write_status(state)
    {:noreply, state}
  end

  def handle_info({:nodedown, node}, state) do
    Logger.info("hello: nodedown #{node}, nodes #{inspect(Enum.sort(Node.list()))}")
    write_status(state)
    {:noreply, state}
  end

  # The addresses the query names, IPv4 and IPv6; none while the name does not resolve yet.
  defp resolve(query) do
    name = String.to_charlist(query)
    :inet_res.lookup(name, :in, :a) ++ :inet_res.lookup(name, :in, :aaaa)
  end

  defp basename do
    case System.get_env("NODE_NAME") do
      nil -> Node.self() |> Atom.to_string() |> String.split("@") |> hd()
      name -> name |> String.split("@") |> hd()
    end
  end

  # How the node got its name: a `-hello_naming vm_args` flag is present only when the VM read
  # the vm.args that rancher-boot rendered from rel/overlays/rancher/vm.args.
  def naming do
    case :init.get_argument(:hello_naming) do
      {:ok, [[value] | _]} -> List.to_string(value)
      _ -> "env"
    end
  end

  defp write_status(state) do
    body = Node.list() |> Enum.map(&"#{&1}\n") |> Enum.sort() |> Enum.join()
    write_atomically(Path.join(state.status_dir, "nodes"), body)
  end

  defp write_atomically(path, body) do
    tmp = path <> ".tmp"
    File.write!(tmp, body)
    File.rename!(tmp, path)
  end
end
