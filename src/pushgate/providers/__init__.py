"""Push provider clients: APNs, FCM v1 and HMS over HTTP/2 (HMS over HTTP/1.1 where it chooses).

verdict       what a provider answer means (`Verdict`)
apns/fcm/hms  the pure parts of each provider: credentials, requests, answer classification
access_token  OAuth2 token answers and their cache (pure)
curl_client   the HTTP client: libcurl (pycurl's multi interface) on the asyncio loop
tls           TLS settings: Python contexts for httpx, what libcurl needs from them
oauth         access-token fetchers (httpx) for FCM and HMS
senders       one sender per credential: `await send(token, payload) -> Verdict`
"""
