"""Push provider clients: APNs, FCM v1 and HMS over HTTP/2.

verdict       what a provider answer means (`Verdict`)
apns/fcm/hms  the pure parts of each provider: credentials, requests, answer classification
access_token  OAuth2 token answers and their cache (pure)
h2client      the HTTP/2 client: a sans-IO connection core and an asyncio transport
oauth         access-token fetchers (httpx) for FCM and HMS
senders       one sender per credential: `await send(token, payload) -> Verdict`
"""
