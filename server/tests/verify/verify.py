"""Verifies one captured delivery with the official libraries, unchanged (SPEC §5).

Usage: verify.py <request.json>  where the JSON holds {"secret", "headers", "body"}.
Exits non-zero, saying which library refused, if either does.
"""
import json
import sys

import stripe
from standardwebhooks.webhooks import Webhook

captured = json.load(open(sys.argv[1]))
secret, headers, body = captured["secret"], captured["headers"], captured["body"]

payload = Webhook(secret).verify(body, headers)
assert payload["id"] == headers["webhook-id"], "standardwebhooks returned another payload"
stripe.WebhookSignature.verify_header(body, headers["x-webhook-signature"], secret, 300)
print("standardwebhooks and stripe both verified", headers["webhook-id"])
