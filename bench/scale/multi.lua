-- wrk script: POST OCSP requests picked uniformly at random from $REQS (each a 2-byte
-- big-endian length then the DER request, written by requests.py), or always the first one
-- with HOT=1 (one hot serial).
--
-- Every request is formatted once, in init(), so that the uniform and the hot runs cost the
-- client the same per request (a table read): formatting in request() made a new Lua string
-- per uniform request (LuaJIT interns every string: hash, allocate, collect) while the hot
-- run's identical string was found interned, so wrk, which shares the machine's cores with the
-- server, spent more per uniform request than per hot one.
local f = assert(io.open(os.getenv("REQS"), "rb"))
local data = f:read("*a")
f:close()
local bodies = {}
local i = 1
while i + 1 <= #data do
  local n = data:byte(i) * 256 + data:byte(i + 1)
  bodies[#bodies + 1] = data:sub(i + 2, i + 1 + n)
  i = i + 2 + n
end
data = nil
local hot = os.getenv("HOT") == "1"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/ocsp-request"
if os.getenv("CLOSE") == "1" then wrk.headers["Connection"] = "close" end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local reqs = {}
local count = 0
-- Called by wrk.init once per thread, after the Host header is set.
function init(args)
  for k, body in ipairs(bodies) do
    reqs[k] = wrk.format(nil, nil, nil, body)
  end
  count = #reqs
  bodies = nil
  collectgarbage()
end
function request()
  if hot then return reqs[1] end
  return reqs[math.random(count)]
end
-- No response() callback (wrk then does not hand bodies to Lua, for both runs alike): wrk's
-- own summary reports "Non-2xx or 3xx responses" and socket errors, which ocsp.sh checks.
