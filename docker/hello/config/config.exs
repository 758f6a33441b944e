import Config

# One line per log entry (the default console format adds a blank line around each).
config :logger, :console, format: "$time [$level] $message\n"
