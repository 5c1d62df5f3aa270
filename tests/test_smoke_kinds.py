from ameli_otp import Reason


def test_smoke(harness, clock):
    c = harness.codes()
    r = c.request_code("1850775123456")
    assert r.ok
    v = c.verify_code("1850775123456", r.code, remember_device=True, fingerprint="fp")
    assert v.ok and c.is_trusted_device("1850775123456", v.device_token, "fp")
    for _ in range(5):
        assert c.request_code("1850775123456").ok
    x = c.request_code("1850775123456")
    assert x.reason == Reason.TOO_MANY_CODES
    d = harness.dump()
    assert b"1850775123456" not in d and len(d) > 10
    l = harness.limiter(limit=1)
    a = l.hit("k")
    assert a.allowed
    assert not l.hit("k").allowed
    l.release("k", a.entry)
    assert l.hit("k").allowed
