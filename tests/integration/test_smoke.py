from tests.support.server import Partner


def test_seed_style_push_reaches_a_registered_ios_user(partner: Partner) -> None:
    partner.session({"email": "smoke@example.com"}, token="ab" * 32)
    r = partner.push(
        {
            "notifications": [
                {
                    "identifiers": {"INSIDER.email": "Smoke@Example.com"},
                    "camp_id": 1,
                    "camp_name": "c",
                    "title": "t",
                    "message": "m",
                    "image_url": "https://x.example/i.jpg",
                }
            ]
        }
    )
    assert r.status_code == 200
    assert r.json() == {"successes": [{"INSIDER.device_token": "ab" * 32}], "errors": {}}
