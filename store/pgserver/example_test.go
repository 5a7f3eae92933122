package pgserver_test

import (
	"context"
	"log"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/mayfly-im/mayfly/store/pgserver"
)

func ExampleStart() {
	ctx := context.Background()
	pg, err := pgserver.Start(ctx, pgserver.Config{Dir: "/var/lib/mayfly/pg", Logger: slog.Default()})
	if err != nil {
		log.Fatal(err) // names the packages to install when binaries are missing
	}
	defer pg.Stop(context.Background())

	conn, err := pgx.Connect(ctx, pg.URL("mayfly"))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)

	select {
	case <-pg.Done():
		log.Print(pg.Err()) // postgres exited on its own
	case <-ctx.Done():
	}
}
