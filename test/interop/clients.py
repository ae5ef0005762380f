"""Python OAuth clients as their documentation shows them, getting a client-credentials token.

Usage: clients.py <client> <issuer> <client_id> <secret, or a private key PEM file>
Prints the token response as one JSON line, or the error the library raised.
Debian's packages: python3-authlib 1.2, python3-requests-oauthlib 1.3.
"""
import json
import os
import sys

from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session

client, issuer, client_id, credential = sys.argv[1:5]
token_endpoint = f"{issuer}/oauth2/token"
# The service under test listens on plain http on loopback; both libraries refuse that by default.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


def private_key():
    with open(credential, "rb") as file:
        return file.read()


def fetch():
    if client == "authlib client_secret_basic":
        return AuthlibSession(client_id, credential, scope="orders:read").fetch_token(token_endpoint, grant_type="client_credentials")
    if client == "authlib client_secret_post":
        session = AuthlibSession(client_id, credential, token_endpoint_auth_method="client_secret_post", scope="orders:read")
        return session.fetch_token(token_endpoint, grant_type="client_credentials")
    if client == "authlib private_key_jwt":
        # Its argument is the assertion's aud: the issuer, which draft-ietf-oauth-rfc7523bis requires.
        session = AuthlibSession(client_id, private_key(), token_endpoint_auth_method=PrivateKeyJWT(issuer))
        return session.fetch_token(token_endpoint, grant_type="client_credentials")
    if client == "authlib private_key_jwt, aud the token endpoint":
        session = AuthlibSession(client_id, private_key(), token_endpoint_auth_method=PrivateKeyJWT(token_endpoint))
        return session.fetch_token(token_endpoint, grant_type="client_credentials")
    if client == "requests-oauthlib client_secret_basic":
        session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
        return session.fetch_token(token_url=token_endpoint, client_id=client_id, client_secret=credential)
    if client == "requests-oauthlib client_secret_post":
        session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
        return session.fetch_token(token_url=token_endpoint, client_id=client_id, client_secret=credential, include_client_id=True)
    raise ValueError(f"no client {client}")


try:
    print(json.dumps(dict(fetch())))
except Exception as error:
    # authlib's OAuthError and oauthlib's OAuth2Error both carry the RFC 6749 error and description.
    print(json.dumps({"error": getattr(error, "error", type(error).__name__), "error_description": getattr(error, "description", str(error))}))
    sys.exit(1)
