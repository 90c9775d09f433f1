-- selector_workers.lua: a render-farm worker pool on one queue, split by
-- selectors: karma workers take `renderer = 'karma' AND frames < 100`, the
-- others take everything else, and nothing is lost or taken twice.

local b = broker{}
b:admin("create queue /queue/frames")

local karma = consumers{ broker = b, destination = "/queue/frames", n = 2, ack = "client-individual",
                         selector = "renderer = 'karma' AND frames < 100" }
local rest = consumers{ broker = b, destination = "/queue/frames", n = 2, ack = "client-individual",
                        selector = "NOT (renderer = 'karma' AND frames < 100)" }
expect(wait_for(function() return karma.ready == 2 and rest.ready == 2 end, 10), "workers subscribed")

local short = producers{ broker = b, destination = "/queue/frames", count = 2000,
                         headers = { renderer = "karma", frames = "24" } }
local long = producers{ broker = b, destination = "/queue/frames", count = 2000,
                        headers = { renderer = "karma", frames = "240" } }
local other = producers{ broker = b, destination = "/queue/frames", count = 2000,
                         headers = { renderer = "mantra", frames = "24" } }
expect(run{ short, long, other, karma, rest, timeout = 60 })

expect(exactly_once(short, karma))
expect(exactly_once(long, rest))
expect(exactly_once(other, rest))
expect(wait_for(function() return b:admin("show /queue/frames").data.depth == 0 end, 5), "the queue is empty")
