// The USD presenter lives with the money rules (src/ledger/money.ts) so that event payloads made
// in the billing layer use it too; routes import it from here.
export { type Usd, type UsdFields, usd, usdFields } from "../ledger/money.js";
