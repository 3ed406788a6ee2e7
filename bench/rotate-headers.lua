-- wrk script: each request carries the next credential from $HEADERS_FILE (one "Name: value"
-- line per credential), round robin, so that no credential repeats until all have been used.
local requests = {}
local i = 0

function init(args)
  -- Built here, not at load time: wrk knows the Host header only once the thread starts.
  for line in io.lines(os.getenv("HEADERS_FILE")) do
    local name, value = line:match("^([^:]+): (.*)$")
    requests[#requests + 1] = wrk.format("GET", "/api/printer", { [name] = value })
  end
end

function request()
  i = i % #requests + 1
  return requests[i]
end
