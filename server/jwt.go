package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/havoclab/havoc/store/auth"
)

// errVerifyOnly is etcd's answer to Authenticate on a member given only a
// public key.
var errVerifyOnly = errors.New("auth: token signing attempted with verify-only key")

// jwtTokens are etcd's JWT tokens (server/auth/jwt.go): claims username,
// revision and exp, signed with the configured method and key.
type jwtTokens struct {
	method     jwt.SigningMethod
	key        any // the private key, or the public one when verifyOnly
	ttl        time.Duration
	verifyOnly bool
}

// parseAuthToken reads etcd's --auth-token value: "simple" (nil), or
// "jwt,sign-method=M,pub-key=FILE,priv-key=FILE[,ttl=D]".
func parseAuthToken(spec string) (auth.Tokens, error) {
	parts := strings.Split(spec, ",")
	opts := map[string]string{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("--auth-token: option %q is not key=value", p)
		}
		if _, dup := opts[k]; dup {
			return nil, fmt.Errorf("--auth-token: option %q given twice", k)
		}
		opts[k] = v
	}
	switch parts[0] {
	case "simple":
		if len(opts) > 0 {
			return nil, errors.New("--auth-token: simple takes no options")
		}
		return nil, nil
	case "jwt":
	default:
		return nil, fmt.Errorf("--auth-token: unknown token type %q (simple or jwt)", parts[0])
	}
	for k := range opts {
		if !slices.Contains([]string{"sign-method", "pub-key", "priv-key", "ttl"}, k) {
			return nil, fmt.Errorf("--auth-token: unknown jwt option %q", k)
		}
	}
	t := &jwtTokens{ttl: 5 * time.Minute}
	if v := opts["ttl"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("--auth-token: ttl: %w", err)
		}
		t.ttl = d
	}
	t.method = jwt.GetSigningMethod(opts["sign-method"])
	if t.method == nil {
		return nil, fmt.Errorf("--auth-token: sign-method %q is not a JWT signing method (e.g. RS256, ES256, EdDSA, HS256)", opts["sign-method"])
	}
	read := func(k string) ([]byte, error) {
		if opts[k] == "" {
			return nil, nil
		}
		b, err := os.ReadFile(opts[k])
		if err != nil {
			return nil, fmt.Errorf("--auth-token: %s: %w", k, err)
		}
		return b, nil
	}
	pubPEM, err := read("pub-key")
	if err != nil {
		return nil, err
	}
	privPEM, err := read("priv-key")
	if err != nil {
		return nil, err
	}
	if err := t.loadKey(pubPEM, privPEM); err != nil {
		return nil, fmt.Errorf("--auth-token: %w", err)
	}
	return t, nil
}

// loadKey is etcd's jwtOptions.Key: the private key when given (checked
// against the public one), else the public key alone (verify only).
func (t *jwtTokens) loadKey(pubPEM, privPEM []byte) error {
	var priv, pub any
	var err error
	switch t.method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(privPEM) == 0 {
			return errors.New("priv-key: missing key data")
		}
		t.key = privPEM
		return nil
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		if len(privPEM) > 0 {
			if priv, err = jwt.ParseRSAPrivateKeyFromPEM(privPEM); err != nil {
				return fmt.Errorf("priv-key: %w", err)
			}
		}
		if len(pubPEM) > 0 {
			if pub, err = jwt.ParseRSAPublicKeyFromPEM(pubPEM); err != nil {
				return fmt.Errorf("pub-key: %w", err)
			}
		}
	case *jwt.SigningMethodECDSA:
		if len(privPEM) > 0 {
			if priv, err = jwt.ParseECPrivateKeyFromPEM(privPEM); err != nil {
				return fmt.Errorf("priv-key: %w", err)
			}
		}
		if len(pubPEM) > 0 {
			if pub, err = jwt.ParseECPublicKeyFromPEM(pubPEM); err != nil {
				return fmt.Errorf("pub-key: %w", err)
			}
		}
	case *jwt.SigningMethodEd25519:
		if len(privPEM) > 0 {
			if priv, err = jwt.ParseEdPrivateKeyFromPEM(privPEM); err != nil {
				return fmt.Errorf("priv-key: %w", err)
			}
		}
		if len(pubPEM) > 0 {
			if pub, err = jwt.ParseEdPublicKeyFromPEM(pubPEM); err != nil {
				return fmt.Errorf("pub-key: %w", err)
			}
		}
	default:
		return fmt.Errorf("unsupported signing method %s", t.method.Alg())
	}
	switch {
	case priv == nil && pub == nil:
		return errors.New("missing key data: give priv-key and/or pub-key")
	case priv == nil:
		t.key, t.verifyOnly = pub, true
		return nil
	}
	if eq, ok := publicOf(priv).(interface{ Equal(crypto.PublicKey) bool }); pub != nil && (!ok || !eq.Equal(pub)) {
		return errors.New("public and private keys don't match")
	}
	t.key = priv
	return nil
}

func publicOf(priv any) any {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		return &k.PublicKey
	case *ecdsa.PrivateKey:
		return &k.PublicKey
	case ed25519.PrivateKey:
		return k.Public()
	}
	return priv
}

// Assign signs a token for user at the auth revision.
func (t *jwtTokens) Assign(user string, revision uint64) (string, error) {
	if t.verifyOnly {
		return "", errVerifyOnly
	}
	return jwt.NewWithClaims(t.method, jwt.MapClaims{
		"username": user, "revision": revision, "exp": time.Now().Add(t.ttl).Unix(),
	}).SignedString(t.key)
}

// Info verifies a token (signature, method, expiry) and returns its claims.
func (t *jwtTokens) Info(token string) (auth.Info, bool) {
	parsed, err := jwt.Parse(token, func(tk *jwt.Token) (any, error) {
		if tk.Method.Alg() != t.method.Alg() {
			return nil, errors.New("invalid signing method")
		}
		if t.verifyOnly {
			return t.key, nil
		}
		if _, ok := t.method.(*jwt.SigningMethodHMAC); ok {
			return t.key, nil
		}
		return publicOf(t.key), nil
	})
	if err != nil || !parsed.Valid {
		return auth.Info{}, false
	}
	claims, ok := parsed.Claims.(jwt.MapClaims)
	if !ok {
		return auth.Info{}, false
	}
	user, ok := claims["username"].(string)
	rev, ok2 := claims["revision"].(float64)
	if !ok || !ok2 {
		return auth.Info{}, false
	}
	return auth.Info{User: user, Revision: uint64(rev)}, true
}
