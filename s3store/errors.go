package s3store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Error kinds, for errors.Is. Every error a Bucket returns carries one.
var (
	ErrNotFound    = errors.New("no such object")
	ErrNoBucket    = errors.New("no such bucket")
	ErrAuth        = errors.New("access denied (check the credentials)")
	ErrCertificate = errors.New("server certificate not accepted")
	ErrUnreachable = errors.New("endpoint unreachable")
	ErrTimeout     = errors.New("request timed out")
	ErrTooLarge    = errors.New("object too large")
	ErrServer      = errors.New("S3 request failed")
)

// Error is a failed request: the operation, the key (never a credential)
// and the kind.
type Error struct {
	Op, Key string
	Kind    error // one of the Err* kinds
	Err     error // the cause as the client reported it
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Key != "" {
		msg += " " + e.Key
	}
	msg += ": " + e.Kind.Error()
	if e.Err != nil && e.Err != e.Kind {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// errCertPin is what the pinned-certificate check returns.
var errCertPin = errors.New("certificate fingerprint does not match the pinned one")

// classify maps a client error to a kind.
func classify(err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "NoSuchKey":
			return ErrNotFound
		case "NoSuchBucket":
			return ErrNoBucket
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken":
			return ErrAuth
		}
		switch resp.StatusCode {
		case 404:
			return ErrNotFound
		case 401, 403:
			return ErrAuth
		}
		return ErrServer
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout
	}
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cerr x509.CertificateInvalidError
	var rerr *tls.RecordHeaderError
	var verr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, errCertPin), errors.As(err, &uerr), errors.As(err, &herr), errors.As(err, &cerr), errors.As(err, &verr):
		return ErrCertificate
	case errors.As(err, &rerr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return ErrCertificate // TLS spoken to a plain HTTP server, or the reverse
	}
	var nerr net.Error
	var operr *net.OpError
	if errors.As(err, &operr) || errors.As(err, &nerr) {
		if nerr != nil && nerr.Timeout() {
			return ErrTimeout
		}
		return ErrUnreachable
	}
	return ErrServer
}

func wrapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Op: op, Key: key, Kind: classify(err), Err: err}
}

// kindErr makes an Error of a known kind.
func kindErr(op, key string, kind error, format string, a ...any) error {
	var cause error
	if format != "" {
		cause = fmt.Errorf(format, a...)
	}
	return &Error{Op: op, Key: key, Kind: kind, Err: cause}
}
