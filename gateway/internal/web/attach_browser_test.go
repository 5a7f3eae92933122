package web_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/attach"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
)

// pngFile returns a small PNG picture's bytes.
func pngFile(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 120, 80))
	for x := range 120 {
		for y := range 80 {
			img.Set(x, y, color.RGBA{uint8(2 * x), uint8(3 * y), 200, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// storedAttachment returns the id of the one complete attachment in the
// ATTACH stream, read with the service user (test-only introspection).
func storedAttachment(t *testing.T, a *gatewaytest.Server) string {
	t.Helper()
	nc, err := nats.Connect(a.NATSURL(), nats.UserInfo(node.ServiceUser, natstest.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, attach.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("att.*.*.*.*.m"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for subj := range info.State.Subjects {
		ids = append(ids, strings.TrimSuffix(strings.TrimPrefix(subj, "att."), ".m"))
	}
	if len(ids) != 1 {
		t.Fatalf("stored attachments %v, want one", ids)
	}
	return ids[0]
}

// fetchAttachment GETs an attachment with u's access token (from `mayfly token`).
func fetchAttachment(t *testing.T, addr string, u cliUser, id string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/attachments/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(u.run("token")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// blobBytes returns the bytes behind the blob: URL the page shows at sel.
func (tb *tab) blobBytes(sel, attr string) []byte {
	tb.t.Helper()
	var s string
	tb.eval(fmt.Sprintf(`(async () => {
		const r = await fetch(document.querySelector(%q).getAttribute(%q));
		const b = new Uint8Array(await r.arrayBuffer());
		let bin = ""; for (const x of b) bin += String.fromCharCode(x);
		return btoa(bin);
	})()`, sel, attr), &s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.t.Fatal(err)
	}
	return b
}

type savedFile struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
	Path string `json:"path"`
}

type savedMessage struct {
	From, Text string
	Files      []savedFile
}

// TestWebAttachmentsWithCLI: a picture from the CLI shows inline in the
// browser with the same bytes; once read, its chunks are gone (the API
// answers unknown_attachment, the bytes leave the store's files); a
// stranger cannot fetch it; a file and a voice note recorded in the page
// reach the CLI byte for byte, and the voice note sent back plays in the
// page. Screenshots at desktop and phone width.
func TestWebAttachmentsWithCLI(t *testing.T) {
	t.Parallel()
	bin := buildCLI(t)
	dataDir := t.TempDir()
	a := gatewaytest.Start(t, gatewaytest.Config{DataDir: dataDir, MailboxRotateInterval: time.Second, NATSCompactInterval: time.Second})
	addr := a.HTTPAddr()
	browser := startBrowser(t)
	alice := openApp(t, browser, addr, "alice")
	alice.register("alice")
	alice.waitOnline()
	carol := cliUser{t: t, bin: bin, home: t.TempDir(), server: "http://" + addr}
	eve := cliUser{t: t, bin: bin, home: t.TempDir(), server: "http://" + addr}
	carol.run("register", "carol")
	eve.run("register", "eve")
	carol.run("friend", "request", "alice")
	alice.waitSelector("incoming request from carol", `#incoming [data-handle="carol"]`)
	alice.click("accept carol", `#incoming [data-handle="carol"] .accept`)
	alice.waitSelector("friend carol", `#friends .friend[data-handle="carol"]`)

	// CLI to browser: a picture. Before alice opens the chat, the sealed
	// bytes are on the server, for the sender only.
	src := t.TempDir()
	pic := pngFile(t)
	os.WriteFile(filepath.Join(src, "sunset.png"), pic, 0o600)
	carol.run("send", "alice", "--file", filepath.Join(src, "sunset.png"), "a picture")
	id := storedAttachment(t, a)
	status, sealed := fetchAttachment(t, addr, carol, id)
	if status != http.StatusOK || len(sealed) != len(pic)+16 {
		t.Fatalf("the sender's fetch: %d, %d bytes", status, len(sealed))
	}
	if status, body := fetchAttachment(t, addr, eve, id); status != http.StatusNotFound || !strings.Contains(string(body), `"unknown_attachment"`) {
		t.Fatalf("a stranger's fetch: %d %s", status, body)
	}
	alice.openChat("carol")
	alice.waitMessage("a picture", "read")
	alice.waitSelector("the picture inline", `#messages figure.file img.picture`)
	if got := alice.blobBytes(`#messages figure.file img.picture`, "src"); !bytes.Equal(got, pic) {
		t.Fatalf("the page shows %d bytes, carol sent %d", len(got), len(pic))
	}
	alice.screenshot("attachment-picture")
	if status, body := fetchAttachment(t, addr, carol, id); status != http.StatusNotFound || !strings.Contains(string(body), `"unknown_attachment"`) {
		t.Fatalf("fetch after the read: %d %s, want 404 unknown_attachment", status, body)
	}
	store := filepath.Join(dataDir, "nats")
	deadline := time.Now().Add(30 * time.Second)
	for natstest.InFiles(t, store, [][]byte{sealed[len(sealed)/2 : len(sealed)/2+48]})[0] {
		if time.Now().After(deadline) {
			t.Fatal("the read picture's sealed bytes are still in the store's files 30s after the read")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Browser to CLI: a file chosen in the page.
	doc := make([]byte, 300<<10)
	rand.Read(doc)
	docPath := filepath.Join(src, "report.bin")
	os.WriteFile(docPath, doc, 0o600)
	alice.do("choose a file", chromedp.SetUploadFiles(chromedp.CSS(`#file-input`), []string{docPath}))
	alice.waitSelector("the chosen file", `#pending-files .chip[data-name="report.bin"]`)
	alice.send("the report")
	alice.waitMessage("the report", "sent")
	save := t.TempDir()
	msgs := jsonLines[savedMessage](t, carol.run("read", "--wait", "30s", "--save", save, "--json"))
	if len(msgs) != 1 || msgs[0].Text != "the report" || len(msgs[0].Files) != 1 || msgs[0].Files[0].Name != "report.bin" {
		t.Fatalf("mayfly read = %+v", msgs)
	}
	if got, _ := os.ReadFile(msgs[0].Files[0].Path); !bytes.Equal(got, doc) {
		t.Fatalf("the CLI saved %d bytes, the page sent %d", len(got), len(doc))
	}
	alice.waitMessage("the report", "read")

	// A voice note recorded in the page (Chromium's fake microphone) reaches
	// the CLI; sent back, it plays in the page.
	alice.click("record", "#record-btn")
	alice.waitJS("recording", `document.querySelector("#record-btn").classList.contains("recording")`)
	time.Sleep(1500 * time.Millisecond) // the recording's length, not a wait for a condition
	alice.click("stop and send", "#record-btn")
	alice.waitJS("the voice note sent", `[...document.querySelectorAll("#messages .msg.out")].some(li => li.querySelector("audio") && li.dataset.status !== "sending")`)
	msgs = jsonLines[savedMessage](t, carol.run("read", "--wait", "30s", "--save", save, "--json"))
	if len(msgs) != 1 || len(msgs[0].Files) != 1 || !strings.HasPrefix(msgs[0].Files[0].Name, "voice-note-") || !strings.HasPrefix(msgs[0].Files[0].Type, "audio/") {
		t.Fatalf("mayfly read of the voice note = %+v", msgs)
	}
	note, _ := os.ReadFile(msgs[0].Files[0].Path)
	if len(note) < 100 || !bytes.HasPrefix(note, []byte{0x1a, 0x45, 0xdf, 0xa3}) {
		t.Fatalf("the voice note is %d bytes, not WebM: % x", len(note), note[:min(8, len(note))])
	}
	carol.run("send", "alice", "--file", msgs[0].Files[0].Path, "your note, back")
	alice.waitMessage("your note, back", "read")
	alice.waitJS("the voice note plays", `(() => {
		const li = [...document.querySelectorAll("#messages .msg.in")].find(li => li.querySelector(".text")?.textContent === "your note, back");
		const a = li && li.querySelector("audio");
		return !!a && a.readyState >= 1 && a.duration > 0;
	})()`)
	if got := alice.blobBytes(`#messages .msg.in:last-child audio`, "src"); !bytes.Equal(got, note) {
		t.Fatalf("the page plays %d bytes, the note was %d", len(got), len(note))
	}
	alice.checkFitsWidth("chat with files")
	alice.screenshot("attachments-desktop")
	alice.atPhoneWidth()
	alice.checkFitsWidth("chat with files, phone")
	alice.screenshot("attachments-phone")
	alice.atDesktopWidth()
	alice.checkNoErrors()

	var e struct{ Error *schema.Error }
	_, body := fetchAttachment(t, addr, eve, "not-an-id")
	if json.Unmarshal(body, &e); e.Error == nil || e.Error.Code != schema.CodeUnknownAttachment {
		t.Errorf("a malformed id: %s", body)
	}
}
