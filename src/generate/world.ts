// The synthetic world the labelled generator simulates: apps with a navigation graph per version, countries with
// carrier IP pools and time zones, device models with realistic app user agents. Pure data plus small pickers.

export { rng } from './rng.js';

/** Mixes a seed with a stream number so each actor has its own independent, reproducible stream. */
export function mixSeed(seed: number, stream: number): number {
  let h = (seed ^ Math.imul(stream + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export type Rand = () => number;
export const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
export function pickWeighted<T>(r: Rand, xs: readonly T[], weight: (x: T) => number): T {
  let total = 0;
  for (const x of xs) total += weight(x);
  let u = r() * total;
  for (const x of xs) {
    u -= weight(x);
    if (u <= 0) return x;
  }
  return xs[xs.length - 1]!;
}
/** Standard normal (Box-Muller). */
export function normal(r: Rand): number {
  const u = Math.max(r(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}
/** Log-normal with the given median and sigma (human think times, amounts). */
export const logNormal = (r: Rand, median: number, sigma: number): number => median * Math.exp(sigma * normal(r));
export const expo = (r: Rand, mean: number): number => -mean * Math.log(Math.max(r(), 1e-12));
export const intBetween = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

// ---------------------------------------------------------------------------------------------------------------
// Countries: weight (share of users), UTC offset (hours, for diurnal activity), locale, currency, IP prefix.

export interface Country {
  code: string;
  weight: number;
  utcOffset: number;
  locale: string;
  currency: string;
  /** First two octets of its (fictional) address space; carrier pools and home IPs are drawn inside it. */
  ipPrefix: string;
}

export const COUNTRIES: readonly Country[] = [
  { code: 'FR', weight: 18, utcOffset: 1, locale: 'fr-FR', currency: 'EUR', ipPrefix: '81.64' },
  { code: 'DE', weight: 16, utcOffset: 1, locale: 'de-DE', currency: 'EUR', ipPrefix: '84.150' },
  { code: 'GB', weight: 14, utcOffset: 0, locale: 'en-GB', currency: 'GBP', ipPrefix: '86.12' },
  { code: 'US', weight: 14, utcOffset: -5, locale: 'en-US', currency: 'USD', ipPrefix: '73.21' },
  { code: 'ES', weight: 9, utcOffset: 1, locale: 'es-ES', currency: 'EUR', ipPrefix: '88.27' },
  { code: 'IT', weight: 8, utcOffset: 1, locale: 'it-IT', currency: 'EUR', ipPrefix: '79.40' },
  { code: 'NL', weight: 6, utcOffset: 1, locale: 'nl-NL', currency: 'EUR', ipPrefix: '77.170' },
  { code: 'PL', weight: 5, utcOffset: 1, locale: 'pl-PL', currency: 'PLN', ipPrefix: '83.4' },
  { code: 'BR', weight: 5, utcOffset: -3, locale: 'pt-BR', currency: 'BRL', ipPrefix: '177.96' },
  { code: 'IN', weight: 5, utcOffset: 5.5, locale: 'en-IN', currency: 'INR', ipPrefix: '49.36' },
];
export const COUNTRY_BY_CODE = new Map(COUNTRIES.map((c) => [c.code, c]));

/** Carrier (CGNAT) addresses per country: shared by many users, which is normal and must not look like an attack. */
export const carrierIp = (r: Rand, c: Country): string => `${c.ipPrefix}.${intBetween(r, 0, 3)}.${intBetween(r, 1, 40)}`;
/** A home broadband address: stable per household. */
export const homeIp = (r: Rand, c: Country): string => `${c.ipPrefix}.${intBetween(r, 16, 250)}.${intBetween(r, 2, 254)}`;
/** Hosting / proxy addresses attackers rent (in any country). */
export const proxyIp = (r: Rand): string => `${pick(r, ['185.220', '45.133', '91.219', '103.152', '194.26'])}.${intBetween(r, 0, 255)}.${intBetween(r, 2, 254)}`;

/** Relative activity by local hour (0-23): low at night, peaks at lunch and evening. */
export const DIURNAL = [
  0.15, 0.08, 0.05, 0.04, 0.04, 0.08, 0.25, 0.55, 0.8, 0.85, 0.85, 0.9, 1.0, 0.95, 0.85, 0.85, 0.9, 1.0, 1.1, 1.2, 1.25, 1.15, 0.8, 0.4,
];
export const DIURNAL_MAX = Math.max(...DIURNAL);
/** Relative activity by day of week (0 = Sunday). */
export const WEEKLY = [1.2, 0.9, 0.9, 0.95, 1.0, 1.05, 1.25];

// ---------------------------------------------------------------------------------------------------------------
// Devices: model, OS, OS versions, and the user agent the app's HTTP stack sends.

export interface DeviceModel {
  platform: 'ios' | 'android';
  os: 'iOS' | 'Android';
  model: string;
  /** Marketing name → the identifier iOS reports, or the Android build id. */
  ident: string;
  osVersions: readonly string[];
  weight: number;
}

export const DEVICE_MODELS: readonly DeviceModel[] = [
  { platform: 'ios', os: 'iOS', model: 'iPhone 15', ident: 'iPhone15,4', osVersions: ['17.5.1', '17.6', '18.1'], weight: 12 },
  { platform: 'ios', os: 'iOS', model: 'iPhone 14', ident: 'iPhone14,7', osVersions: ['17.4', '17.5.1', '18.0'], weight: 12 },
  { platform: 'ios', os: 'iOS', model: 'iPhone 13', ident: 'iPhone14,5', osVersions: ['16.7.8', '17.5.1'], weight: 10 },
  { platform: 'ios', os: 'iOS', model: 'iPhone SE', ident: 'iPhone14,6', osVersions: ['16.7.8', '17.2'], weight: 4 },
  { platform: 'ios', os: 'iOS', model: 'iPad Air', ident: 'iPad13,16', osVersions: ['17.5.1'], weight: 3 },
  { platform: 'android', os: 'Android', model: 'Pixel 8', ident: 'AP2A.240805.005', osVersions: ['14', '15'], weight: 6 },
  { platform: 'android', os: 'Android', model: 'Pixel 7', ident: 'UQ1A.240205.004', osVersions: ['14'], weight: 6 },
  { platform: 'android', os: 'Android', model: 'SM-S918B', ident: 'UP1A.231005.007', osVersions: ['14'], weight: 9 },
  { platform: 'android', os: 'Android', model: 'SM-A546B', ident: 'UP1A.231005.007', osVersions: ['13', '14'], weight: 10 },
  { platform: 'android', os: 'Android', model: 'Redmi Note 12', ident: 'TKQ1.221114.001', osVersions: ['13'], weight: 8 },
  { platform: 'android', os: 'Android', model: 'CPH2449', ident: 'TP1A.220905.001', osVersions: ['13', '14'], weight: 5 },
];

/** The user agent a native app's HTTP client sends (CFNetwork on iOS, okhttp/Dalvik on Android). */
export function appUserAgent(app: AppSpec, version: string, build: string, d: DeviceModel, osVersion: string): string {
  if (d.platform === 'ios') {
    const darwin = osVersion.startsWith('18') ? '24.0.0' : osVersion.startsWith('17') ? '23.5.0' : '22.6.0';
    return `${app.uaName}/${version} (${d.ident}; iOS ${osVersion}; Scale/3.00) CFNetwork/1496.0.7 Darwin/${darwin} build/${build}`;
  }
  return `Dalvik/2.1.0 (Linux; U; Android ${osVersion}; ${d.model} Build/${d.ident}) ${app.uaName}/${version} (${build})`;
}

// ---------------------------------------------------------------------------------------------------------------
// Apps: a navigation graph per version. Edges carry the button that leads there and any business action.

export type Action = 'addToCart' | 'purchase' | 'profileUpdate' | 'paymentMethodAdded' | 'search';

export interface Edge {
  to: string;
  w: number;
  /** Button tapped to follow the edge (a buttonTap event before the screenView). */
  via?: string;
  /** Business event emitted when the edge is followed. */
  action?: Action;
  /** Only when the cart holds something. */
  needsCart?: boolean;
}

export interface AppVersionSpec {
  version: string;
  builds: { ios: string; android: string };
  graph: Record<string, readonly Edge[]>;
}

export interface AppSpec {
  appId: string;
  uaName: string;
  entry: string;
  /** Screen after a successful purchase. */
  afterPurchase: string;
  products: number;
  /** Median price of a product (log-normal). */
  priceMedian: number;
  versions: readonly AppVersionSpec[];
  /** Idle taps a user makes on a screen (do not change the screen). */
  idleButtons: Record<string, readonly string[]>;
}

const SHOP_GRAPH_23: Record<string, readonly Edge[]> = {
  Home: [
    { to: 'Search', w: 22, via: 'search' },
    { to: 'Category', w: 26, via: 'category' },
    { to: 'ProductDetail', w: 14, via: 'featured' },
    { to: 'Cart', w: 7, via: 'cart', needsCart: true },
    { to: 'Profile', w: 6, via: 'profile' },
    { to: 'Orders', w: 4, via: 'orders' },
    { to: 'Settings', w: 2, via: 'settings' },
  ],
  Search: [
    { to: 'ProductList', w: 70, action: 'search' },
    { to: 'Home', w: 20, via: 'back' },
  ],
  Category: [
    { to: 'ProductList', w: 80 },
    { to: 'Home', w: 20, via: 'back' },
  ],
  ProductList: [
    { to: 'ProductDetail', w: 72 },
    { to: 'Search', w: 10, via: 'search' },
    { to: 'Category', w: 8, via: 'back' },
    { to: 'Home', w: 10, via: 'home' },
  ],
  ProductDetail: [
    { to: 'Cart', w: 18, via: 'add_to_cart', action: 'addToCart' },
    { to: 'ProductDetail', w: 8, via: 'related' },
    { to: 'Reviews', w: 8, via: 'reviews' },
    { to: 'ProductList', w: 50, via: 'back' },
    { to: 'Home', w: 10, via: 'home' },
  ],
  Reviews: [{ to: 'ProductDetail', w: 1, via: 'back' }],
  Cart: [
    { to: 'Checkout', w: 55, via: 'checkout', needsCart: true },
    { to: 'ProductList', w: 25, via: 'continue_shopping' },
    { to: 'Home', w: 20, via: 'home' },
  ],
  Checkout: [
    { to: 'Payment', w: 85, via: 'continue' },
    { to: 'Cart', w: 15, via: 'back' },
  ],
  Payment: [
    { to: 'OrderConfirmation', w: 88, via: 'pay', action: 'purchase' },
    { to: 'Checkout', w: 12, via: 'back' },
  ],
  OrderConfirmation: [
    { to: 'Home', w: 70, via: 'done' },
    { to: 'Orders', w: 30, via: 'view_order' },
  ],
  Orders: [
    { to: 'OrderDetail', w: 50 },
    { to: 'Home', w: 50, via: 'back' },
  ],
  OrderDetail: [{ to: 'Orders', w: 1, via: 'back' }],
  Profile: [
    { to: 'EditProfile', w: 12, via: 'edit' },
    { to: 'PaymentMethods', w: 8, via: 'payment_methods' },
    { to: 'Orders', w: 20, via: 'orders' },
    { to: 'Home', w: 60, via: 'back' },
  ],
  EditProfile: [
    { to: 'Profile', w: 40, via: 'save', action: 'profileUpdate' },
    { to: 'Profile', w: 60, via: 'back' },
  ],
  PaymentMethods: [
    { to: 'Profile', w: 35, via: 'add_card', action: 'paymentMethodAdded' },
    { to: 'Profile', w: 65, via: 'back' },
  ],
  Settings: [{ to: 'Home', w: 1, via: 'back' }],
};

/** v2.4.0 (released during the period) adds a Wishlist screen and the edges into and out of it. */
function withWishlist(g: Record<string, readonly Edge[]>, from: string[]): Record<string, readonly Edge[]> {
  const out: Record<string, readonly Edge[]> = { ...g };
  for (const s of from) out[s] = [...g[s]!, { to: 'Wishlist', w: 8, via: 'wishlist' }];
  out.Wishlist = [
    { to: 'ProductDetail', w: 50 },
    { to: 'Cart', w: 20, via: 'cart', needsCart: true },
    { to: 'Home', w: 30, via: 'back' },
  ];
  return out;
}

const FOOD_GRAPH_51: Record<string, readonly Edge[]> = {
  Home: [
    { to: 'RestaurantList', w: 50, via: 'nearby' },
    { to: 'Search', w: 20, via: 'search' },
    { to: 'Basket', w: 6, via: 'basket', needsCart: true },
    { to: 'Account', w: 6, via: 'account' },
    { to: 'OrderHistory', w: 6, via: 'orders' },
  ],
  Search: [
    { to: 'RestaurantList', w: 75, action: 'search' },
    { to: 'Home', w: 25, via: 'back' },
  ],
  RestaurantList: [
    { to: 'Restaurant', w: 80 },
    { to: 'Home', w: 20, via: 'back' },
  ],
  Restaurant: [
    { to: 'MenuItem', w: 75 },
    { to: 'RestaurantList', w: 25, via: 'back' },
  ],
  MenuItem: [
    { to: 'Restaurant', w: 40, via: 'add', action: 'addToCart' },
    { to: 'Basket', w: 15, via: 'add_and_view', action: 'addToCart' },
    { to: 'Restaurant', w: 45, via: 'back' },
  ],
  Basket: [
    { to: 'Checkout', w: 65, via: 'checkout', needsCart: true },
    { to: 'Restaurant', w: 35, via: 'back' },
  ],
  Checkout: [
    { to: 'OrderTracking', w: 85, via: 'place_order', action: 'purchase' },
    { to: 'Basket', w: 15, via: 'back' },
  ],
  OrderTracking: [{ to: 'Home', w: 1, via: 'done' }],
  OrderHistory: [{ to: 'Home', w: 1, via: 'back' }],
  Account: [
    { to: 'EditProfile', w: 15, via: 'edit' },
    { to: 'Wallet', w: 10, via: 'wallet' },
    { to: 'Home', w: 75, via: 'back' },
  ],
  EditProfile: [
    { to: 'Account', w: 40, via: 'save', action: 'profileUpdate' },
    { to: 'Account', w: 60, via: 'back' },
  ],
  Wallet: [
    { to: 'Account', w: 35, via: 'add_card', action: 'paymentMethodAdded' },
    { to: 'Account', w: 65, via: 'back' },
  ],
};

/** v5.2.0 adds Offers (promotions) reachable from Home and Restaurant. */
function withOffers(g: Record<string, readonly Edge[]>): Record<string, readonly Edge[]> {
  return {
    ...g,
    Home: [...g.Home!, { to: 'Offers', w: 10, via: 'offers' }],
    Offers: [
      { to: 'Restaurant', w: 70 },
      { to: 'Home', w: 30, via: 'back' },
    ],
  };
}

export const APPS: readonly AppSpec[] = [
  {
    appId: 'shop',
    uaName: 'ShopApp',
    entry: 'Home',
    afterPurchase: 'OrderConfirmation',
    products: 400,
    priceMedian: 35,
    versions: [
      { version: '2.3.0', builds: { ios: '2300', android: '230012' }, graph: SHOP_GRAPH_23 },
      { version: '2.4.0', builds: { ios: '2410', android: '240017' }, graph: withWishlist(SHOP_GRAPH_23, ['Home', 'ProductDetail']) },
    ],
    idleButtons: { ProductList: ['filter', 'sort'], ProductDetail: ['share', 'gallery'], Home: ['banner'], Cart: ['quantity_plus'] },
  },
  {
    appId: 'food',
    uaName: 'FoodNow',
    entry: 'Home',
    afterPurchase: 'OrderTracking',
    products: 300,
    priceMedian: 24,
    versions: [
      { version: '5.1.3', builds: { ios: '5130', android: '51303' }, graph: FOOD_GRAPH_51 },
      { version: '5.2.0', builds: { ios: '5200', android: '52001' }, graph: withOffers(FOOD_GRAPH_51) },
    ],
    idleButtons: { Restaurant: ['info', 'favourite'], MenuItem: ['options'], Basket: ['tip'] },
  },
];

/** Screens of a version (keys of its graph). */
export const screensOf = (v: AppVersionSpec): string[] => Object.keys(v.graph);
