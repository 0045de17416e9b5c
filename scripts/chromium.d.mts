// Types of scripts/chromium.mjs, for the tests that import it (test/browser.test.ts,
// test/chromium.test.ts).

export interface ChromiumFacts {
  /** A development checkout (test/ is there and npm ran inside it). */
  inCheckout: boolean;
  /** Chromium exists at `path`. */
  installed: boolean;
  /** $FERROGPT_CHROMIUM, else /usr/bin/chromium. */
  path: string;
  /** `path` came from FERROGPT_CHROMIUM. */
  fromEnv: boolean;
  isRoot: boolean;
  isDebian: boolean;
}

export interface ChromiumPlan {
  action: 'none' | 'install' | 'advise';
  message: string;
}

export const CHROMIUM_PACKAGE: string;
export const DEFAULT_CHROMIUM: string;
export function chromiumInstallCommand(isRoot: boolean): string;
export function missingChromiumMessage(facts: Pick<ChromiumFacts, 'path' | 'fromEnv' | 'isRoot' | 'isDebian'>): string;
export function chromiumPlan(facts: ChromiumFacts): ChromiumPlan;
export function chromiumFacts(root: string, env?: Record<string, string | undefined>): ChromiumFacts;
