import { describe, expect, it } from "vitest";
import { countdown, duration, local, short, slaState, utc } from "../src/time";

const at = (iso: string) => Date.parse(iso);

describe("the SLA countdown", () => {
  const warn = "2026-03-02T15:45:00Z";
  const due = "2026-03-02T16:00:00Z";

  it("is calm before the warning, amber from it, red from the due time", () => {
    expect(slaState(at("2026-03-02T15:00:00Z"), warn, due)).toBe("ok");
    expect(slaState(at("2026-03-02T15:45:00Z"), warn, due)).toBe("warn");
    expect(slaState(at("2026-03-02T15:59:59Z"), warn, due)).toBe("warn");
    expect(slaState(at("2026-03-02T16:00:00Z"), warn, due)).toBe("late");
    expect(slaState(at("2026-03-02T15:00:00Z"), null, null)).toBe("none");
  });

  it("counts the real time left, and how late after", () => {
    expect(countdown(at("2026-03-02T15:59:15Z"), due)).toBe("45s");
    expect(countdown(at("2026-03-02T15:47:57Z"), due)).toBe("12:03");
    expect(countdown(at("2026-03-02T12:55:00Z"), due)).toBe("3 h 05 m");
    expect(countdown(at("2026-02-28T12:00:00Z"), due)).toBe("2 d 4 h");
    expect(countdown(at("2026-03-02T16:05:10Z"), due)).toBe("-5:10");
  });

  it("follows a due time the business calendar put on another day", () => {
    // Friday 22:00 in Mexico City, one hour of business time: due Monday 10:00 (16:00Z).
    const friday = at("2026-02-28T04:00:00Z");
    const monday = "2026-03-02T16:00:00Z";
    expect(countdown(friday, monday)).toBe("2 d 12 h");
    expect(local(monday, "America/Mexico_City")).toBe("2026-03-02 10:00");
  });
});

describe("times", () => {
  it("show in the agent's zone, with the UTC instant beside", () => {
    expect(local("2026-03-02T15:05:00Z", "America/Sao_Paulo")).toBe("2026-03-02 12:05");
    expect(local("2026-03-02T15:05:00Z", "Europe/Madrid")).toBe("2026-03-02 16:05");
    expect(utc("2026-03-02T15:05:00.123Z")).toBe("2026-03-02T15:05:00Z");
    const now = at("2026-03-02T15:00:00Z");
    expect(short("2026-03-02T16:00:00Z", now, "America/Mexico_City")).toBe("10:00");
    expect(short("2026-03-03T16:00:00Z", now, "America/Mexico_City")).toBe("Tue 3 Mar 10:00");
  });

  it("read durations at a glance", () => {
    expect(duration(42)).toBe("42 s");
    expect(duration(600)).toBe("10 min");
    expect(duration(9000)).toBe("2.5 h");
    expect(duration(null)).toBe("–");
  });
});
