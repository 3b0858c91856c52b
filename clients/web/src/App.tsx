/** Routes of the dashboard, under /ui/ (the API answers every client route with index.html). */

import { Suspense, lazy } from "react";
import type { ReactNode } from "react";
import { BrowserRouter, Navigate, Route, Routes, useLocation } from "react-router";

import { Loading } from "./components/Feedback";
import { Layout } from "./components/Layout";
import { AccountPage } from "./pages/AccountPage";
import { ApiKeysPage } from "./pages/ApiKeysPage";
import { EnvironmentPage } from "./pages/EnvironmentPage";
import { EnvironmentsPage } from "./pages/EnvironmentsPage";
import { LoginPage, SignupPage } from "./pages/AuthPages";
import { NotFoundPage } from "./pages/NotFoundPage";
import { SandboxesPage } from "./pages/SandboxesPage";
import { VolumesPage } from "./pages/VolumesPage";
import { SessionProvider, useSession } from "./session";

// The sandbox page carries xterm.js and uPlot: loaded when first opened, not with every page.
const SandboxPage = lazy(() => import("./pages/SandboxPage").then((module) => ({ default: module.SandboxPage })));

function RequireSignedIn({ children }: { children: ReactNode }) {
  const { state } = useSession();
  const location = useLocation();
  if (state.status === "signed-out") {
    return <Navigate to="/login" replace state={{ from: location.pathname + location.search }} />;
  }
  return <Suspense fallback={<Loading />}>{children}</Suspense>;
}

export function App() {
  return (
    <SessionProvider>
      <BrowserRouter basename="/ui">
        <Routes>
          <Route element={<Layout />}>
            <Route path="/login" element={<LoginPage />} />
            <Route path="/signup" element={<SignupPage />} />
            <Route path="/" element={<Navigate to="/sandboxes" replace />} />
            <Route path="/sandboxes" element={<RequireSignedIn><SandboxesPage /></RequireSignedIn>} />
            <Route path="/sandboxes/:id" element={<RequireSignedIn><SandboxPage /></RequireSignedIn>} />
            <Route path="/environments" element={<RequireSignedIn><EnvironmentsPage /></RequireSignedIn>} />
            <Route path="/environments/:id" element={<RequireSignedIn><EnvironmentPage /></RequireSignedIn>} />
            <Route path="/volumes" element={<RequireSignedIn><VolumesPage /></RequireSignedIn>} />
            <Route path="/api-keys" element={<RequireSignedIn><ApiKeysPage /></RequireSignedIn>} />
            <Route path="/account" element={<RequireSignedIn><AccountPage /></RequireSignedIn>} />
            <Route path="*" element={<NotFoundPage />} />
          </Route>
        </Routes>
      </BrowserRouter>
    </SessionProvider>
  );
}
