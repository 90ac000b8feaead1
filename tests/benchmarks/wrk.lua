-- wrk script of `make bench`: one request shape per run, set from the environment.
--   BENCH_METHOD  GET or POST
--   BENCH_AUTH    the Authorization header ("Bearer ..."), or "key" to send each request's
--                 key from BENCH_KEYS as "Bearer <key>" (the example API)
--   BENCH_KEYS    file of API keys, one a line: POST bodies {"api_key": "..."} cycle
--                 through them (each wrk thread from its own offset)
-- At the end it prints one line "BENCH_RESULT {json}" that tests/benchmarks/run.py reads.

local method = os.getenv("BENCH_METHOD") or "GET"
local auth = os.getenv("BENCH_AUTH")
local keys_file = os.getenv("BENCH_KEYS")
local keys = {}
if keys_file and keys_file ~= "" then
  for line in io.lines(keys_file) do
    if line ~= "" then keys[#keys + 1] = line end
  end
end
local counter = 0

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  counter = math.random(1, math.max(#keys, 1))
end

function request()
  local headers = {}
  local body = nil
  local key = nil
  if #keys > 0 then
    counter = counter % #keys + 1
    key = keys[counter]
  end
  if auth == "key" then
    headers["Authorization"] = "Bearer " .. key
  elseif auth and auth ~= "" then
    headers["Authorization"] = auth
  end
  if method == "POST" then
    headers["Content-Type"] = "application/json"
    body = '{"api_key": "' .. key .. '"}'
  end
  return wrk.format(method, nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
