package s3store

import (
	"errors"
	"fmt"
	"os"
)

// EndpointFlags are the mount command's endpoint options, before they are
// resolved into an Endpoint.
type EndpointFlags struct {
	URL         string // --s3-endpoint
	Region      string // --s3-region
	PathStyle   bool   // --s3-path-style
	Fingerprint string // --s3-fingerprint
	Config      string // --s3-config: a PBS s3.cfg
	Client      string // --s3-client: the s3-endpoint section id in it
	Credentials string // --s3-credentials: a credentials file
}

// Resolve builds the Endpoint for bucket. With --s3-config and --s3-client
// the section gives URL, region, path style and fingerprint (a flag given
// as well overrides it); otherwise --s3-endpoint is required. Credentials,
// first found wins: --s3-credentials, the s3.cfg section,
// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY. Errors never hold a credential.
func (f EndpointFlags) Resolve(bucket string) (Endpoint, error) {
	var e Endpoint
	switch {
	case f.Config != "" && f.Client == "", f.Config == "" && f.Client != "":
		return e, errors.New("--s3-config and --s3-client go together")
	case f.Config != "":
		data, err := os.ReadFile(f.Config)
		if err != nil {
			return e, fmt.Errorf("--s3-config: %w", err)
		}
		cfg, err := ParseS3Config(data)
		if err != nil {
			return e, fmt.Errorf("--s3-config %s: %w", f.Config, err)
		}
		if e, err = cfg.Endpoint(f.Client, bucket); err != nil {
			return Endpoint{}, fmt.Errorf("--s3-config %s: %w", f.Config, err)
		}
	case f.URL == "":
		return e, errors.New("an s3:// datastore needs --s3-endpoint URL (or --s3-config FILE --s3-client ID)")
	}
	if f.URL != "" {
		e.URL = f.URL
	}
	if f.Region != "" {
		e.Region = f.Region
	}
	if f.PathStyle {
		e.PathStyle = true
	}
	if f.Fingerprint != "" {
		e.Fingerprint = f.Fingerprint
	}
	if e.Fingerprint != "" {
		if _, err := parseFingerprint(e.Fingerprint); err != nil {
			return Endpoint{}, err
		}
	}
	if _, err := endpointURL(e); err != nil {
		return Endpoint{}, err
	}
	switch {
	case f.Credentials != "":
		c, err := ReadCredentialsFile(f.Credentials)
		if err != nil {
			return Endpoint{}, err
		}
		e.Credentials = c
	case e.Credentials.AccessKey != "":
	default:
		c, ok := CredentialsFromEnv()
		if !ok {
			return Endpoint{}, errors.New("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give --s3-credentials FILE or an s3.cfg section with access-key and secret-key")
		}
		e.Credentials = c
	}
	return e, nil
}
