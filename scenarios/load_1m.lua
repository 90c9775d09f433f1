-- load_1m.lua: one million 100-byte messages through a queue, one
-- producer to one consumer, ack auto; prints the throughput.
local b = broker{}
local c = consumers{ broker = b, destination = "/queue/load" }
expect(wait_for(function() return c.ready == 1 end, 10), "the consumer subscribed")
local p = producers{ broker = b, destination = "/queue/load", count = 1000000, size = 100 }
expect(run{ p, c, timeout = 300 })
expect(exactly_once(p, c))
local r = report()
print(string.format("load_1m: %d messages in %.2f s: %.0f msg/s, latency p50 %.2f ms p99 %.2f ms",
	r.received, r.duration_s, r.msgs_per_s, r.latency_p50_ms, r.latency_p99_ms))
