/** The frame of every page: the header with navigation and the account, then the page. */

import { useState } from "react";
import { NavLink, Outlet } from "react-router";

import { useSession } from "../session";
import { Spinner } from "./Feedback";

export function Layout() {
  const { state, logout } = useSession();
  const [leaving, setLeaving] = useState(false);
  const onLogout = async () => {
    setLeaving(true);
    try {
      await logout();
    } finally {
      setLeaving(false);
    }
  };
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <NavLink to="/sandboxes" className="brand">
          Sandbox Platform
        </NavLink>
        {state.status === "signed-in" && (
          <nav aria-label="Main">
            <NavLink to="/sandboxes">Sandboxes</NavLink>
            <NavLink to="/environments">Environments</NavLink>
            <NavLink to="/volumes">Volumes</NavLink>
            <NavLink to="/api-keys">API keys</NavLink>
            <NavLink to="/account">Account</NavLink>
            <a href="/docs">API docs</a>
          </nav>
        )}
        <div className="account">
          {state.status === "signed-in" ? (
            <>
              <span className="email" title="Signed in as">
                {state.user.email}
              </span>
              <button type="button" onClick={onLogout} disabled={leaving}>
                {leaving && <Spinner label="Logging out" />} Log out
              </button>
            </>
          ) : (
            <>
              <NavLink to="/login">Log in</NavLink>
              <NavLink to="/signup">Sign up</NavLink>
            </>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Outlet />
      </main>
    </div>
  );
}
