-- fail_on_purpose.lua: a check that cannot hold, so that a test can show
-- the runner reports a failure with a non-zero status and the check's
-- message. It lives with the tests, not in scenarios/, so that every
-- shipped scenario passes: tests/integration/test_scenarios.py runs it and
-- expects it to fail.
--
-- The producers write to one queue and the consumer reads another, so
-- not a single message can reach it; the script expects all of them to.

local b = broker{}
local c = consumers{ broker = b, destination = "/queue/elsewhere" }
expect(wait_for(function() return c.ready == 1 end, 10), "the consumer subscribed")
local p = producers{ broker = b, destination = "/queue/somewhere", count = 100 }
expect(wait_for(function() return p.done end, 10), "the producer finished")
sleep(100)
expect(exactly_once(p, c))
