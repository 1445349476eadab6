/**
 * React bindings for `@tollgate/client`: a provider that follows one customer's
 * entitlements over the edge's event stream, and hooks that re-render when they change.
 *
 * ```tsx
 * <TollgateProvider edgeUrl="https://edge.example.com" publishableKey="pk_test_…" customerId="user-123">
 *   <App />
 * </TollgateProvider>
 * // anywhere below:
 * const { hasAccess } = useEntitlement("export-data");
 * ```
 */
import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useSyncExternalStore,
  type ReactNode,
} from "react";
import {
  createClient,
  type Entitlement,
  type Entitlements,
  type TollgateClient,
  type TollgateError,
} from "@tollgate/client";

export type { Entitlement, Entitlements, TollgateClient } from "@tollgate/client";

/** What the provider knows about its customer right now. */
export interface EntitlementsState {
  /** The customer's entitlements, once the first event arrived. */
  entitlements?: Entitlements;
  /** No entitlements yet (and no error). */
  loading: boolean;
  /** The last error from the stream; it keeps reconnecting unless the error was fatal. */
  error?: TollgateError;
}

/** One customer's entitlements, shared by every hook below one provider. */
class Store {
  private state: EntitlementsState = { loading: true };
  private readonly listeners = new Set<() => void>();

  get = (): EntitlementsState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  set(next: EntitlementsState): void {
    this.state = next;
    for (const l of this.listeners) l();
  }
}

interface Shared {
  client: TollgateClient;
  store: Store;
}

const Context = createContext<Shared | null>(null);

export interface TollgateProviderProps {
  /** A client to use; or give `edgeUrl` with `publishableKey` or `token`. */
  client?: TollgateClient;
  edgeUrl?: string;
  publishableKey?: string;
  token?: string | (() => string | Promise<string>);
  /** The customer to follow (leave out with a customer token: it names its customer). */
  customerId?: string;
  /** Read-your-writes: the first state is at least this version. */
  minVersion?: number;
  children?: ReactNode;
}

/** Follows one customer's entitlements for the components below it. */
export function TollgateProvider(props: TollgateProviderProps) {
  const { edgeUrl, publishableKey, token, customerId, minVersion } = props;
  const client = useMemo(
    () =>
      props.client ??
      createClient({ edgeUrl: edgeUrl ?? "", key: publishableKey, token }),
    // A token function may be new on every render; the client keeps the first.
    [props.client, edgeUrl, publishableKey],
  );
  const store = useRef<Store | null>(null);
  if (store.current === null) store.current = new Store();
  const shared = useMemo(() => ({ client, store: store.current as Store }), [client]);

  useEffect(() => {
    const s = shared.store;
    s.set({ loading: true });
    const sub = shared.client.subscribe(
      customerId,
      (entitlements) => s.set({ entitlements, loading: false }),
      {
        minVersion,
        onError: (error, fatal) =>
          s.set({ ...s.get(), error, loading: s.get().entitlements === undefined && !fatal }),
      },
    );
    return () => sub.close();
    // minVersion applies to the first state only: a later value does not reconnect.
  }, [shared, customerId]);

  return createElement(Context.Provider, { value: shared }, props.children);
}

function useShared(): Shared {
  const shared = useContext(Context);
  if (!shared) throw new Error("Tollgate hooks must be used inside <TollgateProvider>");
  return shared;
}

/** The provider's client (for one-off reads, e.g. `getEntitlements(id, { minVersion })`). */
export function useTollgate(): TollgateClient {
  return useShared().client;
}

/** The customer's entitlements; re-renders whenever they change. */
export function useEntitlements(): EntitlementsState {
  const { store } = useShared();
  return useSyncExternalStore(store.subscribe, store.get, store.get);
}

export interface EntitlementState {
  /** The feature, or `undefined` (not loaded yet, or not in the catalog). */
  entitlement?: Entitlement;
  /** Whether the customer may use it (`false` while loading). */
  hasAccess: boolean;
  loading: boolean;
  error?: TollgateError;
}

/** One feature of the customer; re-renders when it changes. */
export function useEntitlement(featureId: string): EntitlementState {
  const state = useEntitlements();
  const entitlement = state.entitlements?.entitlements.find((e) => e.featureId === featureId);
  return {
    entitlement,
    hasAccess: entitlement?.hasAccess ?? false,
    loading: state.loading,
    error: state.error,
  };
}
