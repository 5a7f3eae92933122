package app_test

import (
	"net/http"
	"os"
	"testing"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.MainNoLeaks(m)) }

func TestAppRegisterLoginDevices(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	if alice.Session.UserID != alice.User.UserID || alice.Session.AccessToken == "" {
		t.Fatalf("session = %+v", alice.Session)
	}
	var got struct {
		Devices []struct {
			DeviceID string `json:"device_id"`
		}
	}
	alice.Must(http.MethodGet, "/v1/devices", nil, &got)
	if len(got.Devices) != 1 || got.Devices[0].DeviceID != alice.Session.DeviceID {
		t.Fatalf("devices = %+v", got)
	}
}
