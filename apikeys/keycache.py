"""The verification hot path on Redis: key state cached per worker, counts kept in Redis and
written back to the database in batches. Used only when the default cache is Redis; without
it (the embedded default) :func:`verify` answers ``None`` and verification takes the
synchronous database path, unchanged.

Rules of this module:

- **One Redis round trip per verification of a known key, no database round trip.** The
  worker holds the key's state (:class:`Entry`: id, scopes, owner, API, audience, expiry,
  status, grace period of a previous secret) by digest. One Lua script (:data:`_VERIFY`)
  checks that the entry is current, counts the verification and answers the key's total
  count.
- **Current means: same epoch, same version, nothing pending.** Every write that changes a
  key's state (rotate, revoke, owner deletion: :func:`invalidate`) increments the key's
  version in Redis and marks it *pending* before its transaction commits, and increments it
  again and clears the mark once it has committed, before the call returns. A pending key
  is verified on the database; an entry of another version is read again from the database.
  An entry is filled by reading the version first and the row after it, so a row read
  before a commit always carries a version older than the one after it. Redis's *epoch*
  (a random token) is part of every check: if Redis loses its memory the epoch is gone, and
  every worker's entries with it. Expiry needs no write: it is checked against the entry's
  ``expires_at`` at every verification.
- **Counts are exact, and counted once.** A verification adds to the current *generation*
  of counts in Redis (``c:<generation>``: count, latest time and IP per key). The write-back
  (:func:`write_back`, every ``COUNTS_WRITE_BACK_INTERVAL`` seconds by whichever worker takes
  the lock, or ``manage.py apikeys_write_back``) seals the generation (new counts go to the
  next), adds it to the rows in one transaction that also records the generation on each
  row (``counts_generation``: a generation already recorded is never added again, so a
  write-back that dies half-way is simply run again), then in one Lua script notes each
  row's new totals in Redis (the *base*) and drops the generation. A row's count plus the
  generations after the row's (or the base's) generation is the exact total at any moment:
  :func:`merge_counts` does that for reads, :data:`_VERIFY` for the verify answer.
- **Failures degrade, never lie.** Any Redis error: this worker verifies on the database
  (exact) for :data:`BACKOFF_SECONDS`, then tries Redis again; before its next use of Redis
  it replaces the epoch, so that no worker trusts an entry filled while a write may have
  failed to reach Redis. A write that cannot reach Redis still commits (its change is
  honoured by the database path of every worker that cannot reach Redis either).
- **A Redis restart that loses its memory** loses the counts of the generations not yet
  written back (at most one interval, plus a write-back in progress), never double-counts
  (generations are numbered from the clock in milliseconds at each new epoch, so a new
  generation is never one a row already recorded) and never accepts a revoked key (no
  epoch, no entry is trusted).

All keys live under one hash tag (``{apikeys:<database>}``), so they sit in one slot of a
Redis Cluster and two deployments sharing a Redis never mix their keys.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

import redis
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.dispatch import receiver
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apikeys import conf, redisconn
from apikeys.models import ApiKey

logger = logging.getLogger("apikeys.keycache")

# After a Redis error, verify on the database this long before trying Redis again.
BACKOFF_SECONDS: Final = 1.0
# How long a key stays "pending" if the write that marked it never clears the mark (it
# rolled back, or its process died): its verifications use the database meanwhile.
PENDING_MS: Final = 30_000
# Per-worker entries kept at most; past it the cache starts again empty.
MAX_ENTRIES: Final = 100_000
# Counts of a key the write-back cannot find (its row not committed yet) are kept for the
# next write-back, for this long after their last verification.
ORPHAN_MS: Final = 300_000
# Socket timeouts: a Redis that does not answer is a Redis that is down.
SOCKET_TIMEOUT: Final = 0.5
# The write-back lock's lifetime while a write-back runs, renewed after each generation: a
# worker killed while holding it delays the next write-back by this much at most.
LOCK_MS: Final = 10_000

# Answers of the verify script.
_NO_EPOCH: Final = 0
_STALE: Final = 1
_COUNTED: Final = 2

# KEYS: epoch, version, pending, generation, first generation not yet written back,
#       base count, base generation
# ARGV, the entry's part first (packed once per entry, see Entry.packed): 1 epoch,
#       2 version, 3 key id, 4 cached count, 5 cached generation, 6 prefix, 7 rate limit
#       (0: none), 8 its duration (s), 9 credits ('1'/'0'), 10 limits version, 11 row's
#       credits, 12 row's period, 13 refill interval ('' | daily | monthly), 14 refill
#       amount, 15 row's exceeded period, 16 '1': the limits only (the database path
#       verified and counts the key itself: no epoch or version check, nothing counted;
#       the answer starts with 3); then the call's part: 17 outcome as decided in the worker
#       ('v' valid so far, 'r' revoked, 'e' expired, 'a' wrong audience), 18 time (µs),
#       19 ip, 20 cost
# Answer, one string of words (one bulk string is cheaper to read than an array):
#       "0" no epoch | "1 epoch version pending" stale
#       | "2 total-count outcome rate-limit-remaining reset-µs credits-remaining
#          first-refusal-for-credits-in-its-period(1/0) time-µs period", outcome 'v' | 'l'
#          rate limited | 'u' no credits | r/e/a
# Limits use Redis's own clock (TIME), so every machine agrees on the window and the period;
# a key without limits is counted at the worker's time (ARGV 18), as on the database path.
# The window is a sorted set of valid verification times per key (``rl:<id>``), trimmed to
# the duration; credits live in ``cr:<id>`` (remaining, period, limits version, exceeded
# period) and each generation carries their latest value for the write-back. Every outcome
# is counted in the generation by hour (``<id>:<hour>:<outcome>``, the hours in ``<id>:h``).
# Redis calls for a key without limits: MGET, HMGET, two HINCRBY, HSET, two HGET (the
# base), and one HGET per generation not yet written back before the current one.
_VERIFY: Final = """
local only_limits = ARGV[16] == '1'
local s = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
if not only_limits then
  local epoch = s[1]
  if not epoch then return '0' end
  local version = s[2] or '0'
  if epoch ~= ARGV[1] or version ~= ARGV[2] or s[3] then
    return '1 ' .. epoch .. ' ' .. version .. ' ' .. (s[3] and '1' or '0')
  end
end
local id = ARGV[3]
local p = ARGV[6]
local outcome = ARGV[17]
local rl = tonumber(ARGV[7])
local limited = rl > 0 or ARGV[9] == '1'
local secs, t
if limited then
  local clock = redis.call('TIME')
  secs = tonumber(clock[1])
  t = secs * 1000000 + tonumber(clock[2])
else
  t = tonumber(ARGV[18])
  secs = math.floor(t / 1000000)
end
local rl_left = -1
local reset = 0
local credits = -1
local first = 0
local period = -1
local zk = p .. 'rl:' .. id
local window = tonumber(ARGV[8]) * 1000000
if outcome == 'v' and rl > 0 then
  redis.call('ZREMRANGEBYSCORE', zk, '-inf', string.format('%.0f', t - window))
  local n = redis.call('ZCARD', zk)
  if n >= rl then
    outcome = 'l'
    local oldest = redis.call('ZRANGE', zk, 0, 0, 'WITHSCORES')
    reset = tonumber(oldest[2]) + window
  else
    rl_left = rl - n - 1
  end
end
local current = tonumber(s[4] or '-1')
local counts = p .. 'c:' .. current
if outcome == 'v' and ARGV[9] == '1' then
  local ck = p .. 'cr:' .. id
  local cur = redis.call('HMGET', ck, 'r', 'p', 'v', 'x')
  local rem, per, x
  if cur[3] == ARGV[10] then
    rem = tonumber(cur[1])
    per = tonumber(cur[2])
    x = cur[4] or ''
  else
    rem = tonumber(ARGV[11])
    per = tonumber(ARGV[12])
    x = ARGV[15]
  end
  if ARGV[13] ~= '' then
    local days = math.floor(secs / 86400)
    local now_period = days
    if ARGV[13] == 'monthly' then
      local z = days + 719468
      local era = math.floor(z / 146097)
      local doe = z - era * 146097
      local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
        - math.floor(doe / 146096)) / 365)
      local y = yoe + era * 400
      local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
      local mp = math.floor((5 * doy + 2) / 153)
      local m = mp < 10 and mp + 3 or mp - 9
      if m <= 2 then y = y + 1 end
      now_period = y * 12 + m - 1
    end
    if per < now_period then
      rem = tonumber(ARGV[14])
      per = now_period
    end
  end
  local cost = tonumber(ARGV[20])
  if rem < cost then
    outcome = 'u'
    if x ~= string.format('%.0f', per) then
      x = string.format('%.0f', per)
      first = 1
    end
  else
    rem = rem - cost
    credits = rem
  end
  period = per
  local rs = string.format('%.0f', rem)
  local ps = string.format('%.0f', per)
  redis.call('HSET', ck, 'r', rs, 'p', ps, 'v', ARGV[10], 'x', x)
  if current >= 0 then
    redis.call('HSET', counts, id .. ':r', rs, id .. ':p', ps, id .. ':v', ARGV[10], id .. ':x', x)
  end
end
if outcome == 'v' and rl > 0 then
  local ts = string.format('%.0f', t)
  while redis.call('ZSCORE', zk, ts) do
    t = t + 1
    ts = string.format('%.0f', t)
  end
  redis.call('ZADD', zk, ts, ts)
  redis.call('PEXPIRE', zk, string.format('%.0f', window / 1000 + 1000))
end
local answer = ' ' .. outcome .. ' ' .. rl_left .. ' ' .. string.format('%.0f', reset) .. ' '
  .. string.format('%.0f', credits) .. ' ' .. first .. ' ' .. string.format('%.0f', t) .. ' '
  .. period
if only_limits then
  return '3 0' .. answer
end
-- This generation's count of the key, its latest time, the hour it last counted in and its
-- hours, in one call; then one HSET for whatever changes.
local cur = redis.call('HMGET', counts, id, id .. ':t', id .. ':lh', id .. ':h')
local in_current = tonumber(cur[1] or '0')
local fields = {}
if outcome == 'v' then
  in_current = redis.call('HINCRBY', counts, id, 1)
  local when = ARGV[18]
  if limited then when = string.format('%.0f', t) end
  if tonumber(when) >= tonumber(cur[2] or '0') then
    fields[#fields + 1] = id .. ':t'
    fields[#fields + 1] = when
    fields[#fields + 1] = id .. ':i'
    fields[#fields + 1] = ARGV[19]
  end
end
local hour = string.format('%.0f', math.floor(secs / 3600) * 3600)
redis.call('HINCRBY', counts, id .. ':' .. hour .. ':' .. outcome, 1)
if cur[3] ~= hour then
  -- Workers' clocks differ: around an hour's end, the hours can alternate. Each once.
  local hours = cur[4]
  if not hours then
    hours = hour
  elseif not string.find(',' .. hours .. ',', ',' .. hour .. ',', 1, true) then
    hours = hours .. ',' .. hour
  end
  fields[#fields + 1] = id .. ':lh'
  fields[#fields + 1] = hour
  fields[#fields + 1] = id .. ':h'
  fields[#fields + 1] = hours
end
if #fields > 0 then redis.call('HSET', counts, unpack(fields)) end
local total = tonumber(ARGV[4])
local gen = tonumber(ARGV[5])
local base_gen = tonumber(redis.call('HGET', KEYS[7], id) or '-1')
local base_count = tonumber(redis.call('HGET', KEYS[6], id) or '0')
if base_gen > gen or (base_gen == gen and base_count > total) then
  total = base_count
  gen = base_gen
end
local first_gen = tonumber(s[5] or current)
for g = math.max(gen + 1, first_gen), current - 1 do
  total = total + tonumber(redis.call('HGET', p .. 'c:' .. g, id) or '0')
end
if gen < current then total = total + in_current end
return '2 ' .. string.format('%.0f', total) .. answer
"""

# KEYS: first generation, current generation   ARGV: prefix, key id, row's generation
# Answer: generation, hour, outcome, count, ... of the generations after the one given.
_USAGE: Final = """
local current = tonumber(redis.call('GET', KEYS[2]) or '-1')
local first = tonumber(redis.call('GET', KEYS[1]) or current)
local id = ARGV[2]
local out = {}
for g = math.max(tonumber(ARGV[3]) + 1, first), current do
  local counts = ARGV[1] .. 'c:' .. g
  local hours = redis.call('HGET', counts, id .. ':h')
  if hours then
    for hour in string.gmatch(hours, '[^,]+') do
      for _, o in ipairs({'v', 'l', 'u', 'r', 'e', 'a'}) do
        local n = redis.call('HGET', counts, id .. ':' .. hour .. ':' .. o)
        if n then
          out[#out + 1] = g
          out[#out + 1] = hour
          out[#out + 1] = o
          out[#out + 1] = n
        end
      end
    end
  end
end
return out
"""

# KEYS: epoch, generation, first generation
# ARGV: new epoch token, seed generation ('' if not read yet), '1' to replace an epoch that
#       exists
# A missing epoch starts a new one; generations are seeded only if Redis has none (a
# replaced epoch keeps the counts not yet written back). Answer: the epoch, or false when a
# seed is needed and was not given (the caller reads the rows and asks again).
_START_EPOCH: Final = """
local epoch = redis.call('GET', KEYS[1])
if epoch and ARGV[3] == '0' then return epoch end
if not redis.call('GET', KEYS[2]) then
  if ARGV[2] == '' then return false end
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('SET', KEYS[3], ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""

# KEYS: version and pending, two per key   ARGV: 'before' | 'after', pending ms
_BUMP: Final = """
for i = 1, #KEYS, 2 do
  redis.call('INCR', KEYS[i])
  if ARGV[1] == 'before' then
    redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[2])
  else
    redis.call('DEL', KEYS[i + 1])
  end
end
return 1
"""

# KEYS: generation, first generation   Answer: the generations to write back, oldest first
# (the current one is sealed: new counts go to the next).
_SEAL: Final = """
local current = redis.call('GET', KEYS[1])
if not current then return {} end
current = tonumber(current)
local first = tonumber(redis.call('GET', KEYS[2]) or current)
redis.call('SET', KEYS[1], current + 1)
local gens = {}
for g = first, current do gens[#gens + 1] = g end
return gens
"""

# KEYS: counts of the generation, first generation, base count, base generation, base
#       time, base ip, current generation
# ARGV: generation, prefix, now (ms), then per written row: id, count, generation, time, ip;
#       then '--', then the ids not found
_FINISH: Final = """
local g = tonumber(ARGV[1])
local i = 4
while ARGV[i] ~= '--' do
  local id = ARGV[i]
  local known = tonumber(redis.call('HGET', KEYS[4], id) or '-1')
  local gen = tonumber(ARGV[i + 2])
  if gen >= known then
    redis.call('HSET', KEYS[3], id, ARGV[i + 1])
    redis.call('HSET', KEYS[4], id, ARGV[i + 2])
    redis.call('HSET', KEYS[5], id, ARGV[i + 3])
    redis.call('HSET', KEYS[6], id, ARGV[i + 4])
  end
  i = i + 5
end
local current = KEYS[7]
local now_us = tonumber(ARGV[3]) * 1000
for j = i + 1, #ARGV do
  local id = ARGV[j]
  local n = redis.call('HGET', KEYS[1], id)
  local t = redis.call('HGET', KEYS[1], id .. ':t') or '0'
  if n and now_us - tonumber(t) < %(orphan_us)d then
    local into = ARGV[2] .. 'c:' .. redis.call('GET', current)
    redis.call('HINCRBY', into, id, n)
    local tt = tonumber(redis.call('HGET', into, id .. ':t') or '0')
    if tonumber(t) >= tt then
      redis.call('HSET', into, id .. ':t', t, id .. ':i', redis.call('HGET', KEYS[1], id .. ':i') or '')
    end
  end
end
redis.call('DEL', KEYS[1])
local first = tonumber(redis.call('GET', KEYS[2]) or '0')
if first <= g then redis.call('SET', KEYS[2], g + 1) end
return 1
""".replace("%(orphan_us)d", str(ORPHAN_MS * 1000))

# KEYS: first generation, current generation, base count, base generation, base time, base ip
# ARGV: prefix, then per key: id, count, generation
# Answer: per key: total count, latest time (µs, 0 if none), its ip
_READ: Final = """
local current = tonumber(redis.call('GET', KEYS[2]) or '-1')
local first = tonumber(redis.call('GET', KEYS[1]) or current)
local out = {}
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  local total = tonumber(ARGV[i + 1])
  local gen = tonumber(ARGV[i + 2])
  -- Times stay text on the way out (Lua would print a large number in exponent form).
  local t = 0
  local t_text = '0'
  local ip = ''
  local base_gen = tonumber(redis.call('HGET', KEYS[4], id) or '-1')
  local base_count = tonumber(redis.call('HGET', KEYS[3], id) or '0')
  if base_gen > gen or (base_gen == gen and base_count > total) then
    total = base_count
    gen = base_gen
    t_text = redis.call('HGET', KEYS[5], id) or '0'
    t = tonumber(t_text)
    ip = redis.call('HGET', KEYS[6], id) or ''
  end
  for g = math.max(gen + 1, first), current do
    local counts = ARGV[1] .. 'c:' .. g
    total = total + tonumber(redis.call('HGET', counts, id) or '0')
    local gt_text = redis.call('HGET', counts, id .. ':t') or '0'
    if tonumber(gt_text) > t then
      t = tonumber(gt_text)
      t_text = gt_text
      ip = redis.call('HGET', counts, id .. ':i') or ''
    end
  end
  out[#out + 1] = total
  out[#out + 1] = t_text
  out[#out + 1] = ip
end
return out
"""

# KEYS: lock   ARGV: token   Release the lock if it is still ours.
_LOCK_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lock   ARGV: token, ms   Keep the lock for ms more if it is still ours.
_LOCK_EXTEND: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class Entry:
    """What a worker knows of one key, for one of its digests."""

    key_id: str
    # "active", "revoked", or "invalid" (a secret replaced, after its grace period)
    status: str
    # End of the grace period when the digest is the key's previous secret
    valid_until: datetime | None
    expires_at: datetime | None
    audience: str
    scopes: tuple[str, ...]
    org_code: str | None
    user_id: str | None
    api_id: str
    # The owning user's ``is_active`` (True for an organization's key): what the in-process
    # authentication needs to accept a user's key without reading the user. Changing it
    # (``services.user_update``) invalidates the user's keys like a revocation does.
    owner_active: bool
    epoch: str
    version: str
    count: int
    generation: int
    # (limit, duration) of the key's rate limit, if any.
    ratelimit: tuple[int, int] | None = None
    # The verify script's ARGV 7-15 (the key's limits).
    limit_args: tuple[Any, ...] = (0, 0, "0", 0, 0, 0, "", 0, "")
    # The verify command up to the call's own arguments (script, KEYS, ARGV 1-16), packed
    # once when the entry is read: a verification packs only its four (see _Script).
    packed: bytes = b""

    @property
    def limited(self) -> bool:
        return self.limit_args[0] != 0 or self.limit_args[2] == "1"


@dataclass(frozen=True, slots=True)
class Limited:
    """What a limited key's limits said of one verification (the verify script's answer):
    ``code`` None (passed), ``API_KEY_RATE_LIMITED`` or ``API_KEY_USAGE_EXCEEDED``."""

    code: str | None
    ratelimit_remaining: int | None
    reset: datetime | None
    credits_remaining: int | None
    first_exceeded: bool
    period: int | None
    at: datetime


# Outcome letters of the verify script, by ApiKeyUsage column.
USAGE_LETTERS: Final = {
    "v": "verified",
    "l": "rate_limited",
    "u": "usage_exceeded",
    "r": "revoked",
    "e": "expired",
    "a": "wrong_audience",
}
_LETTER_OF_CODE: Final = {
    "API_KEY_REVOKED": "r",
    "API_KEY_EXPIRED": "e",
    "API_KEY_WRONG_AUDIENCE": "a",
}


@dataclass(frozen=True, slots=True)
class Counted:
    """A verification the script accepted, with the key's total count."""

    entry: Entry
    total: int


class _Script:
    """The verify script, run by its SHA-1 on the worker's own connection
    (:class:`apikeys.redisconn.Line`), without redis-py's pool and ``Script`` wrapper.

    Called with ``keys`` and ``args``, or with an entry's ``head`` (:meth:`head`: the
    command packed up to the call's own arguments) and the call's ``tail`` arguments: the
    hot path packs four short arguments instead of thirty. The answer comes back split
    into its words (bytes)."""

    #: Arguments a verification adds to an entry's head (ARGV 17-20).
    TAIL: Final = 4

    def __init__(self, client: redis.Redis, source: str) -> None:
        self.line = redisconn.Line(client)
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    @classmethod
    def head(cls, sha: str, keys: Sequence[str], args: Sequence[Any]) -> bytes:
        """``EVALSHA`` of the script ``sha`` with ``keys`` and the first ``args``, packed
        for :attr:`TAIL` more."""
        parts = ("EVALSHA", sha, len(keys), *keys, *args)
        return b"*%d\r\n%s" % (len(parts) + cls.TAIL, redisconn.pack_args(parts))

    def __call__(
        self,
        *,
        keys: Sequence[str] = (),
        args: Sequence[Any] = (),
        head: bytes = b"",
        tail: Sequence[Any] = (),
    ) -> list[bytes]:
        if head:
            answer = self.line.evalsha_packed(head + redisconn.pack_args(tail), self.source)
        else:
            answer = self.line.evalsha(self.sha, self.source, keys, args)
        return bytes(answer).split()


class _Process:
    """This process's Redis client, scripts, entries and health (reset after a fork)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.pid = os.getpid()
        self.url = url
        self.prefix = prefix
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
        )
        self.verify_script = _Script(self.client, _VERIFY)
        self.verify_sha = self.verify_script.sha
        self.start_epoch_script = self.client.register_script(_START_EPOCH)
        self.bump_script = self.client.register_script(_BUMP)
        self.seal_script = self.client.register_script(_SEAL)
        self.finish_script = self.client.register_script(_FINISH)
        self.read_script = self.client.register_script(_READ)
        self.usage_script = self.client.register_script(_USAGE)
        self.lock_extend_script = self.client.register_script(_LOCK_EXTEND)
        self.lock_release_script = self.client.register_script(_LOCK_RELEASE)
        self.entries: dict[str, Entry] = {}
        # Digest -> key id: never changes (digests are unique), so a key read again after a
        # change costs one database read, not two.
        self.ids: dict[str, str] = {}
        self.down_until = 0.0
        # After an error, the epoch is replaced before Redis is trusted again.
        self.owe_new_epoch = False
        self.writer: threading.Thread | None = None
        self.stop_writer = threading.Event()
        self.lock = threading.Lock()
        p = prefix
        self.k_epoch = p + "epoch"
        self.k_gen = p + "gen"
        self.k_first = p + "first"
        self.k_base_count = p + "bc"
        self.k_base_gen = p + "bg"
        self.k_base_time = p + "bt"
        self.k_base_ip = p + "bi"
        self.k_lock = p + "write-back"

    def verify_keys(self, key_id: str) -> tuple[str, ...]:
        """The KEYS of the verify script for one key (its order is the script's)."""
        return (
            self.k_epoch,
            self.prefix + "v:" + key_id,
            self.prefix + "p:" + key_id,
            self.k_gen,
            self.k_first,
            self.k_base_count,
            self.k_base_gen,
        )


_process: _Process | None = None


def redis_url() -> str | None:
    """The default cache's Redis URL, or None when the default cache is not Redis (found
    as :mod:`apikeys.redisconn` finds it). This module keeps a client of its own: shorter
    timeouts, its scripts registered, and reset after a fork with the rest of its state."""
    return redisconn.url()


def _prefix() -> str:
    name = connections[DEFAULT_DB_ALIAS].settings_dict.get("NAME") or ""
    return "{apikeys:" + str(name) + "}:"


def _state() -> _Process | None:
    """This process's state, or None when Redis is not configured."""
    global _process
    state = _process
    if state is not None and state.pid == os.getpid():
        return state  # the hot path: settings changes reset _process (_settings_changed)
    url = redis_url()
    if url is None:
        return None
    state = _process = _Process(url, _prefix())
    return state


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    """Another cache or database (tests, override_settings): start again from them."""
    global _process
    if setting in ("CACHES", "DATABASES"):
        _process = None


def _usable() -> _Process | None:
    """The state, when Redis is configured and not in its back-off after an error."""
    state = _state()
    if state is None or state.down_until > time.monotonic():
        return None
    if state.owe_new_epoch:
        try:
            _new_epoch(state, replace=True)
        except redis.RedisError:
            _failed(state, "replacing the epoch")
            return None
    return state


def _failed(state: _Process, doing: str) -> None:
    logger.warning("Redis failed while %s; verifying on the database for a while.", doing)
    state.down_until = time.monotonic() + BACKOFF_SECONDS
    state.owe_new_epoch = True
    state.entries.clear()


def _new_epoch(state: _Process, *, replace: bool) -> str:
    """Start an epoch if Redis has none (``replace``: in any case). Generations, if Redis
    has none (it lost its memory), start from the clock in milliseconds, past any a row has
    recorded: read from the rows only then (a scan of the table, once per memory loss)."""
    keys = [state.k_epoch, state.k_gen, state.k_first]
    token = secrets.token_hex(8)
    mode = "1" if replace else "0"
    epoch = state.start_epoch_script(keys=keys, args=[token, "", mode])
    if epoch is None:
        recorded = ApiKey.objects.order_by("-counts_generation").values_list(
            "counts_generation", flat=True
        )
        seed = max(int(time.time() * 1000), (recorded.first() or 0) + 1)
        epoch = state.start_epoch_script(keys=keys, args=[token, seed, mode])
    state.owe_new_epoch = False
    state.entries.clear()
    return epoch.decode() if isinstance(epoch, bytes) else str(epoch)


# --------------------------------------------------------------------------- verification


def verify(
    key_digest: str, audience: str | None, ip: str | None, now: datetime
) -> tuple[Entry, int | None] | None:
    """:func:`verify_limited` without the limits' answer (a cost of 1)."""
    found = verify_limited(key_digest, audience, ip, now)
    return None if found is None else (found[0], found[1])


def verify_limited(
    key_digest: str, audience: str | None, ip: str | None, now: datetime, cost: int = 1
) -> tuple[Entry, int | None, Limited | None] | None:
    """The key's entry, its total count after this verification if it verifies, and what
    its limits said (None for a key without limits, or one refused before them); or None:
    verify on the database (Redis not configured or failing, key unknown, a write of this
    key in progress)."""
    state = _usable()
    if state is None:
        return None
    try:
        found = _verify(state, key_digest, audience, ip, now, cost)
    except redis.RedisError:
        _failed(state, "verifying")
        return None
    if state.writer is None:
        start_writer()
    return found


def _verify(
    state: _Process,
    key_digest: str,
    audience: str | None,
    ip: str | None,
    now: datetime,
    cost: int,
) -> tuple[Entry, int | None, Limited | None] | None:
    entry = state.entries.get(key_digest)
    for _attempt in range(3):
        if entry is None:
            entry = _fill(state, key_digest)
            if entry is None:
                return None
        why = outcome(entry, audience, now)
        if why == "API_KEY_INVALID":
            # Not this key (a replaced secret): nothing is counted.
            return entry, None, None
        answer = state.verify_script(
            head=entry.packed,
            tail=(_LETTER_OF_CODE.get(why or "", "v"), _micros(now), ip or "", cost),
        )
        code = int(answer[0])
        if code == _COUNTED:
            limited = _limited(answer) if entry.limited and why is None else None
            return entry, (int(answer[1]) if answer[2] == b"v" else None), limited
        state.entries.pop(key_digest, None)
        if code == _NO_EPOCH:
            _new_epoch(state, replace=False)
        elif int(answer[3]):
            return None  # a write of this key is in progress: the database decides
        entry = None
    return None  # the key changed three times during one verification: the database decides


def _limited(answer: Sequence[Any]) -> Limited:
    """What the verify script's answer says of the key's limits."""
    letter = _text(answer[2])
    reset = int(_text(answer[4]))
    return Limited(
        code={"l": "API_KEY_RATE_LIMITED", "u": "API_KEY_USAGE_EXCEEDED"}.get(letter),
        ratelimit_remaining=int(answer[3]) if int(answer[3]) >= 0 else None,
        reset=datetime.fromtimestamp(reset / 1_000_000, tz=UTC) if reset else None,
        credits_remaining=int(answer[5]) if int(answer[5]) >= 0 else None,
        first_exceeded=int(answer[6]) == 1,
        period=int(answer[8]) if int(answer[8]) >= 0 else None,
        at=datetime.fromtimestamp(int(_text(answer[7])) / 1_000_000, tz=UTC),
    )


def limit_args(values: dict[str, Any]) -> tuple[Any, ...]:
    """The verify script's ARGV 7-15 from a key row's limit columns."""
    return (
        values["ratelimit_limit"] or 0,
        values["ratelimit_duration"] or 0,
        "1" if values["credits_remaining"] is not None else "0",
        values["limits_version"],
        values["credits_remaining"] or 0,
        values["credits_period"] or 0,
        values["credits_refill_interval"] if values["credits_refill_amount"] else "",
        values["credits_refill_amount"] or 0,
        "" if values["credits_exceeded_period"] is None else values["credits_exceeded_period"],
    )


def apply_limits(key_id: str, values: dict[str, Any], cost: int) -> Limited | None:
    """For the database path with Redis configured (a write of the key in progress): apply
    the key's limits where they live, in Redis (the same script, limits only), so that a
    verification on the database and one on Redis share one window and one credit count.
    None when Redis cannot answer: the database keeps the limits meanwhile."""
    state = _usable()
    if state is None:
        return None
    try:
        answer = state.verify_script(
            keys=state.verify_keys(key_id),
            args=["", "", key_id, 0, 0, state.prefix, *limit_args(values), "1", "v", 0, "", cost],
        )
    except redis.RedisError:
        _failed(state, "applying limits")
        return None
    return _limited(answer)


def outcome(entry: Entry, audience: str | None, now: datetime) -> str | None:
    """Why ``entry`` does not verify now (a ``Verification`` code), or None if it does.
    In the order of the database path: revoked, expired, wrong audience."""
    if entry.status == "invalid" or (entry.valid_until is not None and entry.valid_until <= now):
        return "API_KEY_INVALID"
    if entry.status == "revoked":
        return "API_KEY_REVOKED"
    if entry.expires_at is not None and entry.expires_at <= now:
        return "API_KEY_EXPIRED"
    if audience is not None and entry.audience != audience:
        return "API_KEY_WRONG_AUDIENCE"
    return None


_FILL_COLUMNS: Final = (
    "id",
    "digest",
    "previous_digest",
    "previous_expires_at",
    "status",
    "expires_at",
    "audience",
    "scope_keys",
    "org_code",
    "user_public_id",
    "api_public_id",
    "verification_count",
    "counts_generation",
    "ratelimit_limit",
    "ratelimit_duration",
    "credits_remaining",
    "credits_refill_interval",
    "credits_refill_amount",
    "credits_period",
    "credits_exceeded_period",
    "limits_version",
    "user__is_active",
)


def _fill(state: _Process, key_digest: str) -> Entry | None:
    """Read the key's entry: its version in Redis first, then its row (see the module's
    rules). None if no key has this digest, or a write of it is in progress."""
    from django.db.models import Q

    key_id = state.ids.get(key_digest)
    if key_id is None:
        rows = ApiKey.objects.filter(Q(digest=key_digest) | Q(previous_digest=key_digest))
        key_id = rows.values_list("id", flat=True).first()
        if key_id is None:
            return None
    pipe: Any = state.client.pipeline(transaction=False)
    epoch, version, pending = (
        pipe.get(state.k_epoch)
        .get(state.prefix + "v:" + key_id)
        .exists(state.prefix + "p:" + key_id)
        .execute()
    )
    if epoch is None:
        epoch = _new_epoch(state, replace=False)
        version = state.client.get(state.prefix + "v:" + key_id)
    if pending:
        return None
    row = ApiKey.objects.filter(pk=key_id).values_list(*_FILL_COLUMNS).first()
    if row is None:  # deleted since its id was read
        return None
    values = dict(zip(_FILL_COLUMNS, row, strict=True))
    from apikeys import crypto

    if crypto.constant_time_equals(values["digest"], key_digest):
        valid_until = None
        status = values["status"]
    elif values["previous_digest"] and crypto.constant_time_equals(
        values["previous_digest"], key_digest
    ):
        valid_until = values["previous_expires_at"]
        status = values["status"]
    else:
        valid_until = None
        status = "invalid"
    entry = Entry(
        key_id=values["id"],
        status=status,
        valid_until=aware_datetime(valid_until),
        expires_at=aware_datetime(values["expires_at"]),
        audience=values["audience"],
        scopes=tuple(values["scope_keys"].split()),
        org_code=values["org_code"] or None,
        user_id=values["user_public_id"] or None,
        api_id=values["api_public_id"],
        owner_active=values["user__is_active"] is not False,
        epoch=_text(epoch),
        version=_text(version) if version is not None else "0",
        count=int(values["verification_count"]),
        generation=int(values["counts_generation"]),
        ratelimit=(
            (int(values["ratelimit_limit"]), int(values["ratelimit_duration"]))
            if values["ratelimit_limit"] is not None
            else None
        ),
        limit_args=limit_args(values),
    )
    entry = replace(
        entry,
        packed=_Script.head(
            state.verify_sha,
            keys=state.verify_keys(key_id),
            args=(
                entry.epoch,
                entry.version,
                entry.key_id,
                entry.count,
                entry.generation,
                state.prefix,
                *entry.limit_args,
                "0",
            ),
        ),
    )
    if len(state.entries) >= MAX_ENTRIES:
        state.entries.clear()
        state.ids.clear()
    state.entries[key_digest] = entry
    state.ids[key_digest] = entry.key_id
    return entry


# --------------------------------------------------------------------------- writes


def invalidate(key_ids: Sequence[str]) -> None:
    """Call inside the transaction that changes these keys' state, before it commits:
    marks them pending and new now, and again once the transaction has committed (before
    the call that made the change returns). Nothing to do without Redis."""
    state = _state()
    if state is None or not key_ids:
        return
    ids = list(key_ids)
    _bump(state, ids, "before")
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        transaction.on_commit(lambda: _bump(state, ids, "after"))
    else:  # outside a transaction: the change is already committed
        _bump(state, ids, "after")


def _bump(state: _Process, ids: list[str], when: str) -> None:
    keys: list[str] = []
    for key_id in ids:
        keys += [state.prefix + "v:" + key_id, state.prefix + "p:" + key_id]
    changed = set(ids)
    # list() copies in one step (the write-back thread may clear the dict meanwhile).
    for digest, entry in list(state.entries.items()):
        if entry.key_id in changed:
            state.entries.pop(digest, None)
    try:
        state.bump_script(keys=keys, args=[when, PENDING_MS])
    except redis.RedisError:
        # Every worker that reaches Redis again replaces the epoch first (see _usable);
        # this one does it at its next use of Redis.
        _failed(state, "marking a key changed")


# --------------------------------------------------------------------------- reads


def live_count(key_id: str, count: int, generation: int) -> int:
    """The total count of a key whose row says ``count`` at ``generation``: plus the counts
    in Redis not yet written back (the row's count as it is without Redis)."""
    key = ApiKey(id=key_id, verification_count=count, counts_generation=generation)
    merge_counts([key])
    return int(key.verification_count)


def merge_counts(keys: Iterable[ApiKey]) -> None:
    """Add to each key the counts not yet written back: one Redis round trip for all."""
    state = _usable()
    wanted = [k for k in keys if "verification_count" in k.__dict__ and "id" in k.__dict__]
    if state is None or not wanted:
        return
    args: list[Any] = [state.prefix]
    for key in wanted:
        args += [key.pk, key.verification_count, key.__dict__.get("counts_generation", 0)]
    try:
        answer = state.read_script(
            keys=[
                state.k_first,
                state.k_gen,
                state.k_base_count,
                state.k_base_gen,
                state.k_base_time,
                state.k_base_ip,
            ],
            args=args,
        )
    except redis.RedisError:
        _failed(state, "reading counts")
        return
    for i, key in enumerate(wanted):
        total, micros, ip = answer[3 * i : 3 * i + 3]
        key.verification_count = int(total)
        if int(micros) and "last_verified_on" in key.__dict__:
            when = datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC)
            if key.last_verified_on is None or when >= key.last_verified_on:
                key.last_verified_on = when
                if "last_verified_ip" in key.__dict__:
                    key.last_verified_ip = _text(ip) or None
    _merge_credits(state, wanted)


def _merge_credits(state: _Process, keys: list[ApiKey]) -> None:
    """Credits of limited keys as Redis holds them (ahead of the row until written back),
    when they belong to the row's limits (same limits version)."""
    limited = [
        k
        for k in keys
        if k.__dict__.get("credits_remaining") is not None and "limits_version" in k.__dict__
    ]
    if not limited:
        return
    pipe: Any = state.client.pipeline(transaction=False)
    for key in limited:
        pipe.hmget(state.prefix + "cr:" + key.pk, "r", "p", "v")
    try:
        answers = pipe.execute()
    except redis.RedisError:
        _failed(state, "reading credits")
        return
    for key, (remaining, period, version) in zip(limited, answers, strict=True):
        if version is not None and _text(version) == str(key.limits_version):
            key.credits_remaining = int(_text(remaining))
            if "credits_period" in key.__dict__:
                key.credits_period = int(_text(period))


def unwritten_usage(key_id: str, generation: int = -1) -> list[tuple[int, datetime, str, int]]:
    """The usage counts of a key in Redis not yet written back (after ``generation``):
    (generation, hour start, ApiKeyUsage column, count) each; empty without Redis."""
    return unwritten_usage_many([key_id], generation).get(key_id, [])


def unwritten_usage_many(
    key_ids: Sequence[str], generation: int = -1
) -> dict[str, list[tuple[int, datetime, str, int]]]:
    """:func:`unwritten_usage` of several keys in one Redis round trip (a pipeline): what
    a page of keys with their charts reads."""
    state = _usable()
    if state is None or not key_ids:
        return {}
    try:
        pipe: Any = state.client.pipeline(transaction=False)
        for key_id in key_ids:
            state.usage_script(
                keys=[state.k_first, state.k_gen],
                args=[state.prefix, key_id, generation],
                client=pipe,
            )
        answers = pipe.execute()
    except redis.RedisError:
        _failed(state, "reading usage")
        return {}
    return {
        key_id: [
            (
                int(answer[i]),
                datetime.fromtimestamp(int(_text(answer[i + 1])), tz=UTC),
                USAGE_LETTERS[_text(answer[i + 2])],
                int(_text(answer[i + 3])),
            )
            for i in range(0, len(answer), 4)
        ]
        for key_id, answer in zip(key_ids, answers, strict=True)
    }


# --------------------------------------------------------------------------- write-back


def write_back(renew: Callable[[], object] | None = None) -> int:
    """Fold the counts in Redis into the database; the number of keys written. Safe to run
    at any time, twice, or concurrently (see the module's rules); the worker threads and
    ``manage.py apikeys_write_back`` run it under one Redis lock all the same
    (:func:`write_back_if_due`, :func:`write_back_now`), so one runs at a time. ``renew``
    is called after each generation (to keep the lock)."""
    state = _state()
    if state is None:
        return 0
    gens = state.seal_script(keys=[state.k_gen, state.k_first])
    written = 0
    for gen in gens:
        written += _write_generation(state, int(gen))
        if renew is not None:
            renew()
    return written


def _write_generation(state: _Process, gen: int) -> int:
    counts_key = state.prefix + "c:" + str(gen)
    raw = state.client.hgetall(counts_key)
    fields = {_text(k): _text(v) for k, v in raw.items()}
    updates = [
        (key_id, int(n), int(fields.get(key_id + ":t", "0")), fields.get(key_id + ":i", ""))
        for key_id, n in fields.items()
        if ":" not in key_id
    ]
    # Keys refused only (no count) still have usage (and credits) to write.
    others = sorted({f.split(":", 1)[0] for f in fields if ":" in f} - {u[0] for u in updates})
    rows: list[tuple[str, int, int, datetime | None, str | None]] = []
    if updates or others:
        with transaction.atomic():
            rows = _write_rows(gen, updates, others, fields)
    found = {r[0] for r in rows}
    args: list[Any] = [gen, state.prefix, int(time.time() * 1000)]
    for key_id, count, row_gen, when, ip in rows:
        args += [key_id, count, row_gen, _micros(when) if when else 0, ip or ""]
    args.append("--")
    args += [u[0] for u in updates if u[0] not in found]
    state.finish_script(
        keys=[
            counts_key,
            state.k_first,
            state.k_base_count,
            state.k_base_gen,
            state.k_base_time,
            state.k_base_ip,
            state.k_gen,
        ],
        args=args,
    )
    return len(rows)


# What a write-back reads of a row it is about to write: its open hour of usage.
_OPEN_HOUR: Final = (
    "id",
    "usage_hour",
    "usage_hour_verified",
    "usage_hour_rate_limited",
    "usage_hour_usage_exceeded",
    "usage_hour_revoked",
    "usage_hour_expired",
    "usage_hour_wrong_audience",
)

# A key's open hour: its start (epoch seconds) and its counts, in USAGE_LETTERS' order.
_Hour = tuple[int, list[int]]


def _write_rows(
    gen: int,
    updates: list[tuple[str, int, int, str]],
    others: list[str],
    fields: dict[str, str],
) -> list[tuple[str, int, int, datetime | None, str | None]]:
    """Inside the write-back's transaction: one generation onto the rows that have not
    recorded it yet (held first: row locks on PostgreSQL, the write lock on SQLite). Each
    key's counts, latest time and IP, generation and open hour of usage go in one row
    update; an hour's ApiKeyUsage row is written only when a later hour opens (and once,
    zeros, when it opens). Answers each row's id, count, generation, last time and IP."""
    db = connections[DEFAULT_DB_ALIAS]
    fresh = _hold_fresh(db, gen, [u[0] for u in updates] + others)
    hours, closed = _usage_plan(fresh, fields)
    if closed:
        _add_usage(db, closed)
    _write_credits(db, list(fresh), fields)
    return _apply(db, gen, updates, others, hours)


def _hold_fresh(db: Any, gen: int, key_ids: list[str]) -> dict[str, _Hour | None]:
    """Lock the rows of ``key_ids`` that have not recorded ``gen``: their open hours."""
    table = db.ops.quote_name(ApiKey._meta.db_table)
    found: list[Sequence[Any]] = []
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(_OPEN_HOUR)} FROM {table} "  # nosec B608
                "WHERE id = ANY(%s) AND counts_generation < %s FOR UPDATE",
                [key_ids, gen],
            )
            found = cursor.fetchall()
    else:
        for i in range(0, len(key_ids), 500):
            chunk = key_ids[i : i + 500]
            marks = ", ".join("%s" for _ in chunk)
            with db.cursor() as cursor:
                # A write: SQLite's write lock, held to the end of the transaction.
                cursor.execute(
                    f"UPDATE {table} SET counts_generation = counts_generation "  # nosec B608
                    f"WHERE id IN ({marks})",
                    chunk,
                )
            found += ApiKey.objects.filter(pk__in=chunk, counts_generation__lt=gen).values_list(
                *_OPEN_HOUR
            )
    held: dict[str, _Hour | None] = {}
    for row in found:
        start = aware_datetime(row[1])
        held[row[0]] = (
            None if start is None else (int(start.timestamp()), [int(n) for n in row[2:]])
        )
    return held


def _usage_plan(
    fresh: dict[str, _Hour | None], fields: dict[str, str]
) -> tuple[dict[str, _Hour], list[list[Any]]]:
    """Each fresh key's open hour after this generation, and the ApiKeyUsage additions
    (key, hour start, counts...) it closes: the row's hour when a later one opens, an hour
    of the generation older than the open one (a worker's clock behind another's), and
    zeros for an hour that opens."""
    hours: dict[str, _Hour] = {}
    closed: list[list[Any]] = []
    for key_id, held in fresh.items():
        counted: dict[int, list[int]] = {}
        for text in filter(None, fields.get(key_id + ":h", "").split(",")):
            counts = [int(fields.get(f"{key_id}:{text}:{letter}", "0")) for letter in USAGE_LETTERS]
            if any(counts):
                counted[int(text)] = counts
        if not counted:
            continue
        newest = max(counted)
        if held is not None and held[0] >= newest:
            start, counts = held[0], list(held[1])
        else:
            start, counts = newest, [0] * len(USAGE_LETTERS)
            if held is not None and any(held[1]):
                closed.append([key_id, held[0], *held[1]])
            closed.append([key_id, start, *counts])
        for hour, more in counted.items():
            if hour == start:
                counts = [a + b for a, b in zip(counts, more, strict=True)]
            else:
                closed.append([key_id, hour, *more])
        hours[key_id] = (start, counts)
    return hours, closed


def _add_usage(db: Any, closed: list[list[Any]]) -> None:
    """Add counts to hours of ApiKeyUsage (rows created as needed)."""
    from apikeys.models import ApiKeyUsage

    usage_table = db.ops.quote_name(ApiKeyUsage._meta.db_table)
    columns = ApiKeyUsage.OUTCOMES
    upsert = (
        f"INSERT INTO {usage_table} (api_key_id, start, {', '.join(columns)}) "  # nosec B608
        f"VALUES (%s, %s, {', '.join('%s' for _ in columns)}) "
        "ON CONFLICT (api_key_id, start) DO UPDATE SET "
        + ", ".join(f"{c} = {usage_table}.{c} + excluded.{c}" for c in columns)
    )
    with db.cursor() as cursor:
        cursor.executemany(
            upsert,
            [
                [key_id, db.ops.adapt_datetimefield_value(_hour_start(start)), *counts]
                for key_id, start, *counts in closed
            ],
        )


def _hour_start(epoch_seconds: int) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)


def _write_credits(db: Any, key_ids: list[str], fields: dict[str, str]) -> None:
    """The generation's latest credits of the limited keys among ``key_ids`` (fresh rows)."""
    table = db.ops.quote_name(ApiKey._meta.db_table)
    credits: list[list[Any]] = []
    for key_id in key_ids:
        if key_id + ":r" in fields:
            x = fields.get(key_id + ":x", "")
            credits.append(
                [
                    int(fields[key_id + ":r"]),
                    int(fields[key_id + ":p"]),
                    int(x) if x else None,
                    key_id,
                    int(fields[key_id + ":v"]),
                ]
            )
    if credits:
        with db.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET credits_remaining = %s, credits_period = %s, "  # nosec B608
                "credits_exceeded_period = %s WHERE id = %s AND limits_version = %s",
                credits,
            )


def _apply(
    db: Any,
    gen: int,
    updates: list[tuple[str, int, int, str]],
    others: list[str],
    hours: dict[str, _Hour],
) -> list[tuple[str, int, int, datetime | None, str | None]]:
    """Add one generation to the rows (those that have not recorded it yet): counts, last
    time and IP, generation and open hour in one update per row; each row's id, count,
    generation, last time and IP after it."""
    table = db.ops.quote_name(ApiKey._meta.db_table)
    every = [*updates, *((key_id, 0, 0, "") for key_id in others)]
    params = []
    for key_id, count, micros, ip in every:
        when = db.ops.adapt_datetimefield_value(
            datetime.fromtimestamp(micros / 1_000_000, tz=UTC) if micros else timezone.now()
        )
        hour = hours.get(key_id)
        start = db.ops.adapt_datetimefield_value(_hour_start(hour[0])) if hour else None
        params.append(
            [
                key_id,
                count,
                when,
                ip or None,
                start,
                *(hour[1] if hour else [0] * len(USAGE_LETTERS)),
            ]
        )
    if db.vendor == "postgresql":
        return _apply_postgresql(db, table, gen, params)
    fresh = "counts_generation < %(gen)s"
    later = "%(n)s > 0 AND (last_verified_on IS NULL OR last_verified_on <= %(at)s)"
    opens = f"{fresh} AND %(hour)s IS NOT NULL"
    # Every fragment is a constant of this function and the table name is quoted: no input
    # reaches the text, only the parameters.
    sql = (
        f"UPDATE {table} SET "  # nosec B608
        f"last_verified_ip = CASE WHEN {fresh} AND {later} THEN %(ip)s ELSE last_verified_ip END, "
        f"last_verified_on = CASE WHEN {fresh} AND {later} THEN %(at)s ELSE last_verified_on END, "
        f"verification_count = verification_count + CASE WHEN {fresh} THEN %(n)s ELSE 0 END, "
        f"usage_hour = CASE WHEN {opens} THEN %(hour)s ELSE usage_hour END, "
        + "".join(
            f"usage_hour_{column} = CASE WHEN {opens} THEN %(u{i})s ELSE usage_hour_{column} END, "
            for i, column in enumerate(USAGE_LETTERS.values())
        )
        + f"counts_generation = CASE WHEN {fresh} THEN %(gen)s ELSE counts_generation END "
        "WHERE id = %(id)s"
    )
    with db.cursor() as cursor:
        cursor.executemany(
            sql,
            [
                {
                    "gen": gen,
                    "id": p[0],
                    "n": p[1],
                    "at": p[2],
                    "ip": p[3],
                    "hour": p[4],
                    **{f"u{i}": n for i, n in enumerate(p[5:])},
                }
                for p in params
            ],
        )
    return _written(ApiKey.objects.filter(pk__in=[p[0] for p in params]).values_list(*_WRITTEN))


# What a write-back reads back of each row it wrote.
_WRITTEN: Final = (
    "id",
    "verification_count",
    "counts_generation",
    "last_verified_on",
    "last_verified_ip",
)


def _written(
    rows: Iterable[Sequence[Any]],
) -> list[tuple[str, int, int, datetime | None, str | None]]:
    return [(r[0], int(r[1]), int(r[2]), aware_datetime(r[3]), r[4]) for r in rows]


def _apply_postgresql(
    db: Any, table: str, gen: int, params: list[list[Any]]
) -> list[tuple[str, int, int, datetime | None, str | None]]:
    """:func:`_apply` on PostgreSQL: every row in one statement (the values as arrays,
    unnested), which answers with the rows as written: one round trip and one plan for a
    whole generation instead of one statement per key and a read after them. The ``SET``
    reads the row as it was, as the statement per row does."""
    fresh = "t.counts_generation < %(gen)s"
    later = "v.n > 0 AND (t.last_verified_on IS NULL OR t.last_verified_on <= v.at)"
    opens = f"{fresh} AND v.hour IS NOT NULL"
    columns = list(USAGE_LETTERS.values())
    # Constant fragments and a quoted table name: no input reaches the text.
    sql = (
        f"UPDATE {table} AS t SET "  # nosec B608
        f"last_verified_ip = CASE WHEN {fresh} AND {later} THEN v.ip "
        "ELSE t.last_verified_ip END, "
        f"last_verified_on = CASE WHEN {fresh} AND {later} THEN v.at "
        "ELSE t.last_verified_on END, "
        f"verification_count = t.verification_count + CASE WHEN {fresh} THEN v.n ELSE 0 END, "
        f"usage_hour = CASE WHEN {opens} THEN v.hour ELSE t.usage_hour END, "
        + "".join(
            f"usage_hour_{c} = CASE WHEN {opens} THEN v.u{i} ELSE t.usage_hour_{c} END, "
            for i, c in enumerate(columns)
        )
        + f"counts_generation = CASE WHEN {fresh} THEN %(gen)s ELSE t.counts_generation END "
        "FROM (SELECT unnest(%(ids)s::varchar[]) AS id, unnest(%(counts)s::bigint[]) AS n, "
        "unnest(%(times)s::timestamptz[]) AS at, unnest(%(ips)s::inet[]) AS ip, "
        "unnest(%(hours)s::timestamptz[]) AS hour, "
        + ", ".join(f"unnest(%(u{i})s::bigint[]) AS u{i}" for i in range(len(columns)))
        + ") AS v WHERE t.id = v.id "
        "RETURNING t.id, t.verification_count, t.counts_generation, t.last_verified_on, "
        "t.last_verified_ip"
    )
    values: dict[str, Any] = {
        "gen": gen,
        "ids": [p[0] for p in params],
        "counts": [p[1] for p in params],
        "times": [p[2] for p in params],
        "ips": [p[3] for p in params],
        "hours": [p[4] for p in params],
        **{f"u{i}": [p[5 + i] for p in params] for i in range(len(columns))},
    }
    with db.cursor() as cursor:
        cursor.execute(sql, values)
        return _written(cursor.fetchall())


def start_writer() -> None:
    """Start this process's write-back thread if the settings ask for one and it is not
    running (called on the hot path: cheap when already started)."""
    state = _state()
    if state is None or not conf.get("COUNTS_WRITE_BACK_THREAD"):
        return
    if state.writer is not None:
        return
    with state.lock:
        if state.writer is None:
            state.writer = threading.Thread(
                target=_writer_loop, args=(state,), name="apikeys-write-back", daemon=True
            )
            state.writer.start()


def _writer_loop(state: _Process) -> None:
    """The write-back thread: a tick every interval until ``state.stop_writer`` is set."""
    while not state.stop_writer.wait(float(conf.get("COUNTS_WRITE_BACK_INTERVAL"))):
        try:
            writer_tick(state)
        finally:
            connections.close_all()  # this thread's own connections


def writer_tick(state: _Process) -> None:
    """One tick of the write-back thread: first pay this process's debt of a new epoch
    (a change it made could not reach Redis: replace the epoch as soon as Redis answers,
    even if this worker serves no request), then write back if no worker did within the
    interval. Errors are logged and the next tick tries again."""
    try:
        if state.owe_new_epoch:
            _new_epoch(state, replace=True)
            state.down_until = 0.0
        write_back_if_due(state, float(conf.get("COUNTS_WRITE_BACK_INTERVAL")))
    except Exception:
        logger.exception("Writing verification counts back failed; retrying.")


def _lock(state: _Process) -> tuple[str, Callable[[], object]] | None:
    """Take the write-back lock for LOCK_MS: its token and a function that renews it; None
    if another process holds it."""
    token = secrets.token_hex(8)
    if not state.client.set(state.k_lock, token, nx=True, px=LOCK_MS):
        return None

    def renew() -> object:
        return state.lock_extend_script(keys=[state.k_lock], args=[token, LOCK_MS])

    return token, renew


def write_back_if_due(state: _Process, interval: float) -> bool:
    """Write back if no worker has done so within ``interval`` (the Redis lock)."""
    taken = _lock(state)
    if taken is None:
        return False
    token, renew = taken
    try:
        write_back(renew)
    finally:
        # Held one interval from now: the next write-back is due then.
        state.lock_extend_script(keys=[state.k_lock], args=[token, int(interval * 1000)])
    return True


def new_epoch() -> bool:
    """Replace Redis's epoch now: every worker reads every key again from the database
    (after a write that could not reach Redis, see the README). False without Redis."""
    state = _state()
    if state is None:
        return False
    _new_epoch(state, replace=True)
    return True


def write_back_now(wait: float = LOCK_MS / 1000 + 5) -> int:
    """Write back now, under the workers' lock when it can be had within ``wait`` seconds
    (a write-back in progress ends, and a lock left by a killed worker expires, within
    LOCK_MS); the number of keys written. For ``manage.py apikeys_write_back``.

    Workers retake the lock at every interval, so on a busy fleet it may stay out of reach;
    then this writes back without it, which is safe (the module's rules: a sealed
    generation is added to a row at most once, whoever writes it) and only costs a few
    statements that find nothing to add."""
    state = _state()
    if state is None:
        return 0
    deadline = time.monotonic() + wait
    while (taken := _lock(state)) is None:
        if time.monotonic() > deadline:
            logger.warning("The write-back lock stayed taken; writing back beside it.")
            return write_back()
        time.sleep(0.01)
    token, renew = taken
    try:
        return write_back(renew)
    finally:
        state.lock_release_script(keys=[state.k_lock], args=[token])


# --------------------------------------------------------------------------- helpers


def _micros(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def aware_datetime(value: Any) -> datetime | None:
    """A datetime read by raw SQL: SQLite hands back naive UTC text, PostgreSQL a datetime."""
    if value is None:
        return None
    when: datetime | None = value if isinstance(value, datetime) else parse_datetime(str(value))
    if when is not None and timezone.is_naive(when):
        when = when.replace(tzinfo=UTC)
    return when


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
