-- wrk script for bench/run_api_bench.py: POSTs JSON bodies read from a file, in turn,
-- and prints one JSON line of totals and latency percentiles when wrk is done.
--
--   wrk -t1 -c32 -d10s -s bench/wrk_bodies.lua URL -- BODIES_FILE [HEADER VALUE]
--
-- BODIES_FILE holds the bodies separated by NUL bytes (bench/loadgen.py writes it).
-- Every request is pre-formatted in init(), so wrk spends no Lua time per request
-- beyond picking the next one.

local requests = {}
local count = 0
local index = 0
local threads = 0

function setup(thread)
   thread:set("offset", threads)
   threads = threads + 1
end

function init(args)
   local path = args[1]
   local headers = { ["Content-Type"] = "application/json" }
   if args[2] then
      headers[args[2]] = args[3]
   end
   local file = assert(io.open(path, "rb"))
   local data = file:read("*a")
   file:close()
   for body in string.gmatch(data, "[^%z]+") do
      count = count + 1
      local copy = {}
      for k, v in pairs(headers) do
         copy[k] = v
      end
      requests[count] = wrk.format("POST", wrk.path, copy, body)
   end
   assert(count > 0, "no bodies in " .. path)
   -- Threads start at different places, so varied bodies are not sent twice at once.
   index = ((offset or 0) * 7919) % count
end

function request()
   index = index + 1
   if index > count then
      index = 1
   end
   return requests[index]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, '
         .. '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, '
         .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, '
         .. '"mean_us": %.1f}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
