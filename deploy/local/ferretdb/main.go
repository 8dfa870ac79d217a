// Command ferretdb runs an embedded FerretDB 1.x with its SQLite backend.
//
// It exists because `go install github.com/FerretDB/FerretDB/cmd/ferretdb`
// panics without the version file that FerretDB's own build generates; the
// embeddable package has no such requirement.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	sqliteURL := flag.String("sqlite-url", "file:.data/ferretdb/", "SQLite directory URI (must end with /)")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: *sqliteURL,
		Logger:    logger,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Index the collections that already exist before clients arrive, then
	// keep up with the ones they create (see idindex.go).
	keeper := newIDIndexKeeper(*sqliteURL, logger)
	keeper.pass(ctx)
	go keeper.run(ctx, 500*time.Millisecond)

	logger.Warn("FerretDB listening", "addr", *listen, "sqlite", *sqliteURL)
	f.Run(ctx)
}
