-- workload.lua: one benchmark workload against any STOMP broker, described
-- by the environment; ci/bench runs it against mqbroker, RabbitMQ, ActiveMQ
-- and the relay, and reads the JSON report.
--
--   MQB_HOST, MQB_PORT, MQB_VHOST     the target (attach{})
--   MQB_LOGIN, MQB_PASSCODE
--   MQB_DEST        destination (default /queue/bench)
--   MQB_PRODUCERS   producer connections (1)
--   MQB_CONSUMERS   consumer connections (1)
--   MQB_SIZE        body bytes (100)
--   MQB_DURATION    seconds of sending (5)
--   MQB_RATE        messages/s in all (unbounded)
--   MQB_PERSISTENT  "1": persistent:true
--   MQB_RECEIPTS    receipt window per producer (0: none)
--   MQB_ACK         auto, client or client-individual (auto)
--   MQB_LOSSY       "1": a topic under overload may drop messages for
--                   consumers that cannot keep up; count what arrives
--                   instead of insisting on everything

local function env(name, default)
	local v = os.getenv(name)
	if v == nil or v == "" then
		return default
	end
	return v
end

local b = attach{
	host = env("MQB_HOST", "127.0.0.1"),
	port = tonumber(env("MQB_PORT", "61613")),
	vhost = env("MQB_VHOST", nil),
	login = env("MQB_LOGIN", "guest"),
	passcode = env("MQB_PASSCODE", "guest"),
}
local dest = env("MQB_DEST", "/queue/bench")
local nc = tonumber(env("MQB_CONSUMERS", "1"))

local c = consumers{
	broker = b,
	destination = dest,
	n = nc,
	ack = env("MQB_ACK", "auto"),
}
expect(wait_for(function() return c.ready == nc end, 30), "consumers subscribed")

local p = producers{
	broker = b,
	destination = dest,
	n = tonumber(env("MQB_PRODUCERS", "1")),
	duration = tonumber(env("MQB_DURATION", "5")),
	rate = tonumber(env("MQB_RATE", "0")) > 0 and tonumber(env("MQB_RATE", "0")) or nil,
	size = tonumber(env("MQB_SIZE", "100")),
	persistent = env("MQB_PERSISTENT", "0") == "1",
	receipts = tonumber(env("MQB_RECEIPTS", "0")),
}
if env("MQB_LOSSY", "0") == "1" then
	run{ p, c, timeout = tonumber(env("MQB_DURATION", "5")) + 15 }
else
	-- everything sent must arrive; a slow peer gets time to drain its backlog
	expect(run{ p, c, timeout = 600 })
	expect(at_least_once(p, c))
end
