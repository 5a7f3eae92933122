package store

import (
	"context"
	"fmt"
)

// ShareLastSeen reports, for each of userIDs that exists, whether the user
// lets friends see when they were last online (users.share_last_seen).
// Unknown ids are absent from the map.
func (db *DB) ShareLastSeen(ctx context.Context, userIDs []string) (map[string]bool, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, share_last_seen FROM users WHERE id = ANY($1)`, userIDs)
	if err != nil {
		return nil, fmt.Errorf("share last seen: %w", err)
	}
	defer rows.Close()
	out := make(map[string]bool, len(userIDs))
	for rows.Next() {
		var id string
		var share bool
		if err := rows.Scan(&id, &share); err != nil {
			return nil, fmt.Errorf("share last seen: %w", err)
		}
		out[id] = share
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("share last seen: %w", err)
	}
	return out, nil
}

// SetShareLastSeen sets whether userID lets friends see when they were last
// online. It returns ErrNotFound if there is no such user.
func (db *DB) SetShareLastSeen(ctx context.Context, userID string, share bool) error {
	tag, err := db.pool.Exec(ctx, `UPDATE users SET share_last_seen = $2 WHERE id = $1`, userID, share)
	if err != nil {
		return fmt.Errorf("set share last seen: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
