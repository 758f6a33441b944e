defmodule Hello.MixProject do
  use Mix.Project

  # The example release of rancher-boot: a node that clusters the blog's way, by resolving
  # DNS_CLUSTER_QUERY (else its service name) every few seconds and connecting to `basename@ip`
  # for each address, as dns_cluster does.
  def project do
    [
      app: :hello,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      deps: [],
      releases: [
        hello: [
          include_executables_for: [:unix],
          # ERTS is bundled, so the runtime image needs no Erlang package (only libc, libstdc++,
          # libtinfo and zlib, which a Debian minbase holds).
          include_erts: true,
          strip_beams: true
        ]
      ]
    ]
  end

  def application do
    # :ssl is in the release so that it can run TLS distribution (RANCHER_BOOT_DIST=tls):
    # -proto_dist inet_tls needs it in the release's code path at boot.
    [extra_applications: [:logger, :ssl], mod: {Hello.Application, []}]
  end
end
