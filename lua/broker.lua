-- broker.lua: the mqbroker configuration, every option at its default.
--
-- Start the broker with it:   mqbroker -f lua/broker.lua
-- Command-line options override what this file sets. docs/configuration.md
-- is the reference; lua/examples/ has worked examples of the rules.
--
-- The file is Lua, run once in a sandbox (no io, no os.execute, no debug,
-- require only under lua/). Each option is a global. A global that is not
-- an option, a rule table or a function is an error, so a typo such as
-- max_fram = "1MiB" stops the broker instead of being ignored: keep your
-- own variables `local`.
--
-- Sizes are numbers of bytes or strings with a binary unit: "64KiB",
-- "16MiB", "1GiB" (K = 1024). Durations are numbers of milliseconds or
-- strings such as "500ms", "60s", "5m", "1h", "2d".
--
-- Options whose default is computed or absent are commented out; the
-- others are set here to the value they have when they are not set.

---------------------------------------------------------------------------
-- Files
---------------------------------------------------------------------------

-- Directory for the journal, the lock file and the control socket.
-- Default: /var/lib/mqbroker for root, else $XDG_STATE_HOME/mqbroker or
-- ~/.local/state/mqbroker. (--data-dir)
-- data_dir = "/var/lib/mqbroker"

-- Unix socket for mqsh and other admin tools. Default: <data_dir>/mqbroker.sock
-- (--control-socket)
-- control_socket = "/var/lib/mqbroker/mqbroker.sock"

-- Group whose members may use the control socket (mode 0660, that group);
-- the broker's user must belong to it. Default: none, the broker's user
-- only (mode 0600). The Debian package's unit sets "mqbroker-admin".
-- control_socket_group = "mqbroker-admin"

-- Write a JSON file with the broker's addresses (host, port, TLS port, HTTP
-- address, control socket, pid) as soon as it listens; removed at a clean
-- shutdown. Default: none. (-c)
-- connection_file = "/tmp/mqbroker.json"

-- Send all logging to this file instead of stderr. Default: stderr. (-g)
-- log_file = "/var/log/mqbroker.log"

-- 0 none, 1 errors, 2 warnings, 3 all, 4 debug. (-l)
log_level = 1

-- This broker's name in the mq-via header of the messages its bridges
-- forward (docs/bridges.md): 1 to 64 letters, digits, '-', '_' or '.'.
-- Default: generated at the first start and kept in <data_dir>/broker-id.
-- broker_id = "site-a"

---------------------------------------------------------------------------
-- Listeners
---------------------------------------------------------------------------

-- STOMP listeners. address: an IP address; omitted or "*" means every
-- address. port: 0 lets the kernel choose. tls = true makes it STOMP over
-- TLS (needs tls.cert_key below, or -k). -i and -p override the first plain
-- listener. Ports listed here are bound exactly (start-up fails when one is
-- taken); only without this list and without -p does the broker scan
-- upward from 61613 for a free port.
listeners = {
	{ port = 61613 },
	-- { address = "127.0.0.1", port = 61613 },
	-- { port = 61614, tls = true },
}

-- TLS. cert_key: one PEM file holding the server certificate and its
-- private key (-k; also MQBROKER_CERT_KEY). port: the STOMP over TLS port
-- used when TLS is enabled without a listener of its own. ca_chains:
-- client certificates must verify against these CA files; shell-style
-- globs are expanded at load and each must match at least one file (-a;
-- also MQBROKER_CA_CHAINS). A verified certificate's subject CN becomes the
-- connection's login. The flat options below are the same settings as
-- cert_key and port; set each in one place only:
-- tls_cert_key = "/etc/mqbroker/server.pem"
-- tls_port = 61614
tls = {
	-- cert_key = "/etc/mqbroker/server.pem",
	port = 61614,
	-- ca_chains = { "/etc/mqbroker/ca.pem", "/etc/grid-security/certificates/*.pem" },
}

-- HTTP endpoint port (POST /<http_path>/<destination>, /health, /metrics,
-- /api/...); 0 = no HTTP. (-w PORT MAXCONN URLPATH)
http_port = 0

-- HTTP connections at once. (-w)
http_max_connections = 64

-- URL path messages are POSTed under, without leading or trailing '/'. (-w)
http_path = ""

-- /health and /metrics answer anyone who can reach the HTTP port; false:
-- from other machines they need a user, as /api reads always do.
http_public_metrics = true

-- TCP port for admin commands with an admin login; 0 = none.
admin_port = 0

-- STOMP over WebSocket (docs/websocket.md): a listener of its own, on the
-- first plain listener's address; 0 = none. ws_port is plain, wss_port is
-- TLS (needs a certificate). (--ws-port, --wss-port)
ws_port = 0
wss_port = 0
-- The upgrade request's largest size, and the seconds it may take.
ws_max_handshake = "8KiB"
ws_handshake_timeout = 10
-- A WebSocket that receives nothing for this many seconds is closed; a ping
-- at half the time makes any live client answer. 0 = never.
ws_idle_timeout = 60
-- Origins a browser may connect from, comma-separated
-- ("https://console.example, http://localhost:8080"); empty = any.
ws_origins = ""
-- Every STOMP frame as a binary message, instead of text when the frame is
-- valid UTF-8 and binary otherwise.
ws_binary_frames = false

---------------------------------------------------------------------------
-- Lifecycle
---------------------------------------------------------------------------

-- Shut down after this many seconds without network activity; 0 = never.
-- Ignored with persistent_server. (-t)
idle_timeout = 0

-- Refuse remote shutdown and never time out. (-s)
persistent_server = false

-- Connections that CONNECT with the same client-id share their topic
-- subscriptions: each message goes to one of them in turn. (-r)
round_robin = false

---------------------------------------------------------------------------
-- Limits
---------------------------------------------------------------------------

-- Client connections at once; more are refused with an ERROR. (-n)
max_connections = 1024

-- Callbacks handled per event-loop iteration, so no connection starves
-- the others. (-m)
max_events = 50

-- Largest frame, headers and body.
max_frame = "16MiB"

-- Header lines in one frame.
max_headers = 128

-- Longest header line (and command line).
max_header_line = "8KiB"

-- Subscriptions one connection may hold.
max_subscriptions = 1024

-- Transactions one connection may have open.
max_transactions = 64

-- SEND, ACK and NACK frames one transaction may hold.
max_transaction_frames = 100000

-- Message bytes one connection's open transactions may hold (at most a
-- quarter of memory_high_watermark is enforced).
max_transaction_bytes = "64MiB"

-- Bytes waiting to be written to one connection before deliveries to it
-- stop (a slow consumer) ...
max_output = "4MiB"

-- ... and before it is closed.
max_output_hard = "64MiB"

-- A consumer whose output stays full this long (ms) without taking
-- anything is slow: until then topics slow their producers down instead
-- of dropping its messages; after, they skip it, or disconnect it when
-- slow_consumer_disconnect is true.
slow_consumer_timeout = 10000
slow_consumer_disconnect = false

-- A new connection must send CONNECT within this many ms. At
-- max_connections the connection that waited longest for its CONNECT
-- gives way to a new one (from the new one's address when that address
-- holds more than max_handshakes_per_address of them).
handshake_timeout = 10000
max_handshakes_per_address = 64

-- A frame that has started arriving must be complete within this many ms.
frame_timeout = 60000

-- Shortest heart-beat interval the broker agrees to, either way.
heartbeat_min_ms = 100

-- Extra silence allowed past the agreed heart-beat interval before a peer
-- is dropped, in percent.
heartbeat_grace_pct = 100

---------------------------------------------------------------------------
-- Protocol
---------------------------------------------------------------------------

-- An ACK or NACK naming an unknown transaction is performed outside any
-- transaction instead of failing the connection (what stomp.py in DIRAC
-- needs); counted in the statistics.
lenient_transactions = true

-- Virtual host for clients that send no host header, host:/, or this
-- broker's own name or address (what stomp.py sends); any other name must
-- be a virtual host.
default_vhost = "/"

-- Clients that do not log in as a user may connect from other machines
-- too, not only from loopback (docs/security.md).
allow_anonymous = false

-- Virtual hosts, matched against CONNECT's host header. Each has its own
-- destinations. Default: none besides default_vhost. mqsh's vhost add
-- makes more at run time.
vhosts = {
	-- "/", "dirac",
}

-- Users. login as sent in CONNECT; passcode a hash as
-- `mqbroker --hash-password` prints it (plain text still works, with a
-- warning); without a passcode, the user logs in only with a TLS client
-- certificate whose CN is the login. admin = true allows admin commands.
-- mqsh's user add and permit manage users and their grants at run time
-- (docs/security.md).
users = {
	-- { login = "operator", passcode = "$pbkdf2-sha512$i=210000$...", admin = true },
	-- { login = "dirac-agent.example.org" },   -- certificate login
}

---------------------------------------------------------------------------
-- Journal
---------------------------------------------------------------------------

-- When the journal is flushed to disk: "always" (a receipt waits for the
-- fsync that covers it, writes grouped), "interval" (every
-- fsync_interval_ms), "never" (left to the kernel).
fsync = "always"

-- fsync period under the interval policy.
fsync_interval_ms = 100

-- Size at which a journal segment is closed and a new one started.
segment_size = "64MiB"

-- Bodies a persistent queue keeps in memory; beyond it they are read back
-- from the journal.
queue_memory_budget = "64MiB"

-- Message memory above which producers are slowed; 0 = 40% of physical
-- memory.
memory_high_watermark = 0

---------------------------------------------------------------------------
-- Queues and destinations
---------------------------------------------------------------------------

-- Policy of every queue that does not set its own.
queue_defaults = {
	-- Journal every message (DIRAC's Persistent = True).
	persistent = false,
	-- Most messages held; 0 = unbounded.
	max_length = 0,
	-- Most body bytes held; 0 = unbounded.
	max_bytes = 0,
	-- When full: "drop-oldest" (the head is dropped or dead-lettered) or
	-- "reject" (the new message gets an ERROR naming the queue and limit).
	overflow = "drop-oldest",
	-- Default time-to-live of a message; "0" = none. (expires and
	-- x-message-ttl headers set it per message.)
	ttl = "0",
	-- Deliveries (NACKs, or consumers gone without ACK) before a message is
	-- dead-lettered; 0 = unlimited.
	max_deliveries = 0,
	-- Where dead letters go. Default: /queue/DLQ.<queue name>;
	-- false drops them instead.
	-- dead_letter = "/queue/DLQ.all",
	-- Drop a message whose mq-post-id header this queue took within this
	-- time: the repeats a bridge or a reconnecting producer sends; "0" = off.
	dedup_window = "0",
}

-- Destination-type rules: { "regex", "type" }, tried in order on the name
-- of every new destination; the first match decides its type (queue,
-- topic, pubsub or command). The built-in prefixes /queue/, /pubsub/,
-- /command/ (and topic for the rest) come after them. POSIX extended
-- regular expressions; anchor them with ^ and $. A pubsub rule may list the
-- child queues its destinations replicate into.
types = {
	-- { "^/jobs/", "queue" },
	-- { "^/events/[a-z]+$", "pubsub", children = { "/queue/audit", "/queue/archive" } },
}

-- Destinations created at start-up: { "name", "type", options... }. The
-- type may be left out (the rules and prefixes decide). Queues take the
-- queue_defaults options above; a pubsub takes its children; vhost picks a
-- virtual host listed in vhosts.
destinations = {
	-- { "/queue/jobs", "queue", persistent = true, max_length = 10000 },
	-- { "/pubsub/events", "pubsub", children = { "/queue/audit" } },
	-- { "/topic/news", "topic" },
	-- { "/queue/jobs", "queue", vhost = "dirac" },
}

-- Bridges to and from other STOMP brokers (docs/bridges.md lists every
-- option). An outbound bridge forwards a local queue, a topic or every
-- destination matching a pattern to a remote broker, and acknowledges a
-- message here only once the remote's RECEIPT came back; an inbound bridge
-- subscribes on a remote broker and confirms upstream once this broker
-- holds the message. hosts are the remote's nodes, tried in turn.
bridges = {
	-- { name = "to-cluster", direction = "out", from = "/queue/orders", to = "/amq/queue/orders",
	--   hosts = { "rabbit1:61613", "rabbit2:61613", "rabbit3:61613" }, login = "bridge", passcode = "secret",
	--   window = 1000, heartbeat = "10s", reconnect_min = "100ms", reconnect_max = "30s",
	--   stall_timeout = "60s", send_headers = { ["x-queue-type"] = "quorum" } },
	-- { name = "from-cluster", direction = "in", from = "/amq/queue/orders", to = "/queue/orders",
	--   hosts = "rabbit1:61613,rabbit2:61613", login = "bridge", passcode = "secret", dedup = "1h" },
}

---------------------------------------------------------------------------
-- Lua limits
---------------------------------------------------------------------------

-- Instructions one call of route(), authorize() or on_event() may run
-- before it is stopped (the message is refused; the broker goes on).
-- Loading this file runs under the limit in force before it.
lua_budget = 1000000

-- Memory the Lua state may allocate; past it a call ends with an error.
lua_memory = "64MiB"

---------------------------------------------------------------------------
-- Rules
---------------------------------------------------------------------------

-- route(msg) is called for every SEND when defined; without it no Lua runs
-- per message. msg.destination, msg.headers (read, or assign a string or
-- nil to set or remove a header), msg.body (copied into Lua only when
-- read), msg.login, msg.vhost, msg.conn_id. Return nothing to deliver as
-- sent, a destination to send it there instead, a list of destinations to
-- send a copy to each, false to drop it; error("text") refuses it and the
-- sender gets an ERROR with that text.
--
-- function route(msg)
-- 	if msg.headers.priority == "high" then
-- 		return "/queue/jobs.high"
-- 	end
-- end

-- authorize(login, action, destination, info) decides connect, send,
-- subscribe and admin. Return true, or false with an optional reason.
-- info has peer, loopback, vhost, authenticated and admin_user. Without it,
-- the broker's default applies (everything allowed on loopback).
--
-- function authorize(login, action, destination, info)
-- 	return info.loopback or login ~= nil
-- end

-- on_event(name, fields) is told about connections and destinations
-- coming and going; fields is a table of strings: id, peer, login and
-- vhost for client-connected and client-disconnected (and reason), name,
-- type and vhost for destination-created and destination-deleted.
-- docs/configuration.md lists every event.
--
-- function on_event(name, fields)
-- 	if name == "client-connected" then
-- 		print("client", fields.id, "from", fields.peer)
-- 	elseif name == "destination-created" then
-- 		print(fields.type, fields.name, "created")
-- 	end
-- end
