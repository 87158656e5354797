-- wrk script: POST the DER request in $REQ as application/ocsp-request (keep-alive).
local f = assert(io.open(os.getenv("REQ"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/ocsp-request"

-- count non-200 answers so a failing server cannot pass for a fast one
-- OpenSSL 3.0's responder mishandles kept-alive connections (workers hang and spin):
-- with CLOSE=1 every request opens a new connection.
if os.getenv("CLOSE") == "1" then wrk.headers["Connection"] = "close" end

local bad = 0
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("non-2xx-or-error: %d, socket errors: connect %d read %d write %d timeout %d\n",
    bad, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
