-- wrk script: POST OCSP requests picked uniformly at random from $REQS (each a 2-byte
-- big-endian length then the DER request, written by requests.py), or always the first one
-- with HOT=1 (one hot serial). Counts non-200 answers.
local f = assert(io.open(os.getenv("REQS"), "rb"))
local data = f:read("*a")
f:close()
local reqs = {}
local i = 1
while i + 1 <= #data do
  local n = data:byte(i) * 256 + data:byte(i + 1)
  reqs[#reqs + 1] = data:sub(i + 2, i + 1 + n)
  i = i + 2 + n
end
local hot = os.getenv("HOT") == "1"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/ocsp-request"
if os.getenv("CLOSE") == "1" then wrk.headers["Connection"] = "close" end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
function request()
  local body = reqs[1]
  if not hot then body = reqs[math.random(#reqs)] end
  return wrk.format(nil, nil, nil, body)
end
local bad = 0
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("requests-in-file: %d, non-2xx-or-error: %d, socket errors: connect %d read %d write %d timeout %d\n",
    #reqs, bad, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
