/** Loading data and running actions, with the states a page shows (spinner, error). */

import { useCallback, useEffect, useRef, useState } from "react";
import type { DependencyList } from "react";

import { useSession } from "./session";

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  /** Replace the data in place (after an action answered with the new state). */
  setData: (update: (current: T | undefined) => T | undefined) => void;
}

/** `load()` on mount and whenever `deps` change; `reload()` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: DependencyList): Loaded<T> {
  const { check } = useSession();
  const [data, setDataState] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const [round, setRound] = useState(0);
  const loader = useRef(load);
  loader.current = load;

  useEffect(() => {
    let live = true;
    setLoading(true);
    loader.current().then(
      (value) => {
        if (!live) return;
        setDataState(value);
        setError(undefined);
        setLoading(false);
      },
      (failure: unknown) => {
        if (!live) return;
        check(failure);
        setError(failure);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the caller's deps decide when to load again
  }, [...deps, round, check]);

  const reload = useCallback(() => {
    setRound((n) => n + 1);
  }, []);
  const setData = useCallback((update: (current: T | undefined) => T | undefined) => {
    setDataState(update);
  }, []);
  return { data, error, loading, reload, setData };
}

export interface Action {
  /** Run `work`; resolves with its result, or undefined when it failed (the error is kept). */
  run: <T>(work: () => Promise<T>) => Promise<T | undefined>;
  pending: boolean;
  error: unknown;
  clear: () => void;
}

/** One action at a time (a form's submit, a button): pending while it runs, its error after. */
export function useAction(): Action {
  const { check } = useSession();
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);

  const run = useCallback(
    async <T,>(work: () => Promise<T>): Promise<T | undefined> => {
      setPending(true);
      setError(undefined);
      try {
        return await work();
      } catch (failure) {
        check(failure);
        if (mounted.current) setError(failure);
        return undefined;
      } finally {
        if (mounted.current) setPending(false);
      }
    },
    [check],
  );
  const clear = useCallback(() => {
    setError(undefined);
  }, []);
  return { run, pending, error, clear };
}
