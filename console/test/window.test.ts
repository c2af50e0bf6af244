import { describe, expect, it } from "vitest";
import { describeWindow, replyWindow } from "../src/window";

const at = (iso: string) => Date.parse(iso);
const last = "2026-03-02T10:00:00Z";

describe("the reply window", () => {
  it("is open for 24 hours after the customer's last message", () => {
    const w = replyWindow("whatsapp", at("2026-03-03T08:30:00Z"), last);
    expect(w).toMatchObject({ kind: "open", leftMs: 90 * 60_000 });
    expect(describeWindow(w)).toBe("Free text for 1 h 30 min more (24-hour window).");
  });

  it("then takes a template on WhatsApp", () => {
    const w = replyWindow("whatsapp", at("2026-03-03T10:00:00Z"), last);
    expect(w.kind).toBe("template");
    expect(describeWindow(w)).toContain("template");
  });

  it("then the HUMAN_AGENT tag for 7 days on Messenger and Instagram, then nothing", () => {
    for (const channel of ["messenger", "instagram"]) {
      const tag = replyWindow(channel, at("2026-03-04T10:00:00Z"), last);
      expect(tag).toMatchObject({ kind: "tag" });
      expect(describeWindow(tag)).toContain("HUMAN_AGENT");
      expect(replyWindow(channel, at("2026-03-09T10:00:01Z"), last).kind).toBe("closed");
    }
  });

  it("allows a public reply to a comment always, a private one for 7 days", () => {
    const comment = "2026-03-02T10:00:00Z";
    expect(replyWindow("facebook_feed", at("2026-03-05T00:00:00Z"), last, comment)).toEqual({
      kind: "public",
      privateUntil: at("2026-03-09T10:00:00Z"),
    });
    const late = replyWindow("instagram", at("2026-03-10T00:00:00Z"), last, comment);
    expect(late).toEqual({ kind: "public", privateUntil: null });
    expect(describeWindow(late)).toContain("no longer possible");
  });

  it("says so when the customer never wrote", () => {
    expect(replyWindow("whatsapp", at("2026-03-02T10:00:00Z"), null).kind).toBe("closed");
  });
});
