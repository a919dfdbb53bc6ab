package main

import (
	"fmt"
	"io"
	"log/slog"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

// logOptions are the logging flags shared by all commands.
type logOptions struct {
	verbose bool
	debug   bool
	file    string // --log-file; "" = stderr (syslog in the background, logdest.go)
}

// newLogger makes the slog text logger on w: warnings and errors by
// default, info with -v, debug with --debug.
func newLogger(w io.Writer, o logOptions) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: o.level()}))
}

// level is the least level logged.
func (o logOptions) level() slog.Level {
	switch {
	case o.debug:
		return slog.LevelDebug
	case o.verbose:
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// fuseConfig returns the bazil server config: with --debug every FUSE
// request and response is logged at debug level. It also points bazil's
// package-level fuse.Debug hook (connection-level messages) at the logger;
// main owns the process, so setting it here is the one place that may.
func fuseConfig(log *slog.Logger, o logOptions) *fusefs.Config {
	if !o.debug {
		return nil
	}
	hook := func(msg any) { log.Debug("fuse: " + fmt.Sprint(msg)) }
	fuse.Debug = hook
	return &fusefs.Config{Debug: hook}
}
