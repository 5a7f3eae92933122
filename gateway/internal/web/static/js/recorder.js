// Voice notes: records the microphone with MediaRecorder while the user
// holds the recording on, and hands back the note as a file to send.

/** Recorder records one voice note at a time. */
export class Recorder {
  constructor() {
    this.rec = null;
  }

  get active() {
    return this.rec !== null;
  }

  /** start asks for the microphone and starts recording. */
  async start() {
    if (!navigator.mediaDevices || typeof MediaRecorder === "undefined") {
      throw Object.assign(new Error("this browser cannot record audio"), { code: "no_recorder" });
    }
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const type = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus"].find((t) => MediaRecorder.isTypeSupported(t)) || "";
    this.chunks = [];
    this.stream = stream;
    this.rec = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    this.rec.addEventListener("dataavailable", (e) => { if (e.data.size) this.chunks.push(e.data); });
    this.rec.start(250);
  }

  /** stop ends the recording and returns it as {name, type, data: Uint8Array}. */
  async stop() {
    const rec = this.rec;
    this.rec = null;
    const stopped = new Promise((resolve) => rec.addEventListener("stop", resolve, { once: true }));
    rec.stop();
    await stopped;
    for (const t of this.stream.getTracks()) t.stop();
    const type = (rec.mimeType || "audio/webm").split(";")[0];
    const blob = new Blob(this.chunks, { type });
    const stamp = new Date().toISOString().slice(0, 19).replace(/[T:]/g, "-");
    return { name: `voice-note-${stamp}.${type === "audio/ogg" ? "ogg" : "webm"}`, type, data: new Uint8Array(await blob.arrayBuffer()) };
  }
}
