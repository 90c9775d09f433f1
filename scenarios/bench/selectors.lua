-- selectors.lua: the cost of selectors on a work queue (issue 20's figure).
-- Ten producers, each stamping its messages with k = its number, and ten
-- consumers on one queue. With MQB_SELECTORS=1 consumer i takes only
-- `k = i AND x > 0 AND y < 100` (three comparisons, and exactly one
-- consumer matches each message); without, every consumer takes anything.
-- Compare the msgs/s of the two runs (ci/bench does; docs/benchmarks.md).
--
--   MQB_HOST, MQB_PORT   the broker (attach{})
--   MQB_SELECTORS        "1": the consumers have selectors
--   MQB_SIZE             body bytes (100)
--   MQB_DURATION         seconds of sending (5)

local function env(name, default)
	local v = os.getenv(name)
	if v == nil or v == "" then
		return default
	end
	return v
end

local b = attach{ host = env("MQB_HOST", "127.0.0.1"), port = tonumber(env("MQB_PORT", "61613")) }
local dest = env("MQB_DEST", "/queue/selectors")
local with = env("MQB_SELECTORS", "0") == "1"
local n = 10

local cs, ps = {}, {}
for i = 1, n do
	cs[i] = consumers{
		broker = b,
		destination = dest,
		selector = with and string.format("k = %d AND x > 0 AND y < 100", i) or nil,
	}
end
expect(wait_for(function()
	for i = 1, n do
		if cs[i].ready ~= 1 then return false end
	end
	return true
end, 30), "consumers subscribed")
for i = 1, n do
	ps[i] = producers{
		broker = b,
		destination = dest,
		duration = tonumber(env("MQB_DURATION", "5")),
		size = tonumber(env("MQB_SIZE", "100")),
		headers = { k = tostring(i), x = "1", y = "50" },
	}
end
local all = {}
for i = 1, n do
	all[#all + 1] = ps[i]
	all[#all + 1] = cs[i]
end
all.timeout = 600
expect(run(all))
