defmodule Hello.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    Supervisor.start_link([Hello.Poller], strategy: :one_for_one, name: Hello.Supervisor)
  end
end
