// Go's golang.org/x/oauth2/clientcredentials as its documentation shows it, getting a token.
//
// Usage: go run clients.go <client> <issuer> <client_id> <secret>
// Prints the token as one JSON line, or the error. Debian's package: golang-golang-x-oauth2-dev.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func main() {
	client, issuer, clientID, secret := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	config := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: issuer + "/oauth2/token", Scopes: []string{"orders:read"}}
	switch client {
	case "x/oauth2 AuthStyleInHeader":
		config.AuthStyle = oauth2.AuthStyleInHeader
	case "x/oauth2 AuthStyleInParams":
		config.AuthStyle = oauth2.AuthStyleInParams
	case "x/oauth2 two resources":
		// RFC 8707 §2: one token for both.
		config.EndpointParams = url.Values{"resource": {"https://orders.internal", "https://billing.internal"}}
	default:
		fmt.Fprintln(os.Stderr, "no client", client)
		os.Exit(2)
	}
	token, err := config.Token(context.Background())
	if err != nil {
		json.NewEncoder(os.Stdout).Encode(map[string]string{"error": err.Error()})
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"access_token": token.AccessToken, "token_type": token.TokenType, "scope": token.Extra("scope")})
}
