package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"strings"
	"sync"
)

// openLogger returns the logger of a mount and what to close at the end.
// The log goes to --log-file if given (appended), else to stderr in the
// foreground and to syslog (the journal, where systemd runs) in the
// background, where no stderr is left to write to.
func openLogger(o logOptions, stderr io.Writer, background bool) (*slog.Logger, func(), error) {
	if o.file != "" {
		f, err := os.OpenFile(o.file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, exitf(ExitUsage, "--log-file: %w", err)
		}
		return newLogger(f, o), func() { f.Close() }, nil
	}
	if !background {
		return newLogger(stderr, o), func() {}, nil
	}
	w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "pbsfs")
	if err != nil {
		fmt.Fprintf(stderr, "pbsfs: warning: no syslog (%v): the mount will log nothing; give log-file=FILE\n", err)
		return slog.New(slog.DiscardHandler), func() {}, nil
	}
	return slog.New(newSyslogHandler(w, o.level())), func() { w.Close() }, nil
}

// syslogHandler is a slog handler that sends each record to syslog at the
// record's level (error, warning, info, debug), formatted as slog's text
// handler does but without time and level, which syslog records itself.
type syslogHandler struct {
	w     *syslog.Writer
	level slog.Leveler
	out   *lockedBuf   // shared by the handlers derived with WithAttrs/WithGroup
	text  slog.Handler // writes into out.buf
}

type lockedBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newSyslogHandler(w *syslog.Writer, level slog.Leveler) *syslogHandler {
	out := &lockedBuf{}
	text := slog.NewTextHandler(&out.buf, &slog.HandlerOptions{
		Level: slog.LevelDebug, // filtered by Enabled
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return &syslogHandler{w: w, level: level, out: out, text: text}
}

func (h *syslogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	msg := strings.TrimSuffix(h.out.buf.String(), "\n")
	switch {
	case r.Level >= slog.LevelError:
		return h.w.Err(msg)
	case r.Level >= slog.LevelWarn:
		return h.w.Warning(msg)
	case r.Level >= slog.LevelInfo:
		return h.w.Info(msg)
	}
	return h.w.Debug(msg)
}

func (h *syslogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.text = h.text.WithAttrs(attrs)
	return &c
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.text = h.text.WithGroup(name)
	return &c
}
