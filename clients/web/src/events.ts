/** The caller's sandbox events over `/ws/events` (the SDK resumes it after a dropped socket). */

import { useEffect, useRef, useState } from "react";
import type { SandboxEvent } from "@sandbox-platform/sdk";

import { useSession } from "./session";

export type FeedState = { status: "connecting" } | { status: "live" } | { status: "failed"; error: unknown };

/** Calls `onEvent` for each event while the component is mounted; returns the feed's state. */
export function useEventFeed(onEvent: (event: SandboxEvent) => void): { state: FeedState; retry: () => void } {
  const { client, check } = useSession();
  const [state, setState] = useState<FeedState>({ status: "connecting" });
  const [round, setRound] = useState(0);
  const handler = useRef(onEvent);
  useEffect(() => {
    handler.current = onEvent;
  });

  useEffect(() => {
    const controller = new AbortController();
    const stream = client.subscribeEvents({ signal: controller.signal });
    setState({ status: "connecting" });
    void stream.ready().then(() => {
      if (!controller.signal.aborted) setState({ status: "live" });
    });
    void (async () => {
      try {
        for await (const event of stream) handler.current(event);
      } catch (error) {
        if (controller.signal.aborted) return;
        check(error);
        setState({ status: "failed", error });
      }
    })();
    return () => {
      controller.abort();
    };
  }, [client, check, round]);

  return {
    state,
    retry: () => {
      setRound((n) => n + 1);
    },
  };
}
