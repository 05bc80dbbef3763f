import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppDeps, AppEnv } from "../context.js";
import { registerCancelSubscription } from "./admin/cancel-subscription.js";
import { registerCloseCycles } from "./admin/close-cycles.js";
import { registerCreateAdjustment } from "./admin/create-adjustment.js";
import { registerCreateCreditNote } from "./admin/create-credit-note.js";
import { registerCreateKey } from "./admin/create-key.js";
import { registerCreateOrg } from "./admin/create-org.js";
import { registerCreatePlatformKey } from "./admin/create-platform-key.js";
import { registerListPlatformKeys } from "./admin/list-platform-keys.js";
import { registerGetOrg } from "./admin/get-org.js";
import { registerGrantCredits } from "./admin/grant-credits.js";
import { registerLinkProcessorCustomer } from "./admin/link-processor-customer.js";
import { registerRevokeKey } from "./admin/revoke-key.js";
import { registerSetInvoiceStatus } from "./admin/set-invoice-status.js";
import { registerSubscribe } from "./admin/subscribe.js";
import { registerCreatePromoCode } from "./admin/create-promo-code.js";
import { registerDeactivatePromoCode } from "./admin/deactivate-promo-code.js";
import { registerListPromoCodes } from "./admin/list-promo-codes.js";
import { registerListGrants } from "./billing/list-grants.js";
import { registerRedeemPromoCode } from "./billing/redeem-promo-code.js";
import { registerCreatePaymentMethodSetup } from "./billing/create-payment-method-setup.js";
import { registerCreateOrgKey } from "./billing/create-org-key.js";
import { registerCreateTopup } from "./billing/create-topup.js";
import { registerListKeys } from "./billing/list-keys.js";
import { registerListBudgets } from "./billing/list-budgets.js";
import { registerSetBudget } from "./billing/set-budget.js";
import { registerDeleteBudget } from "./billing/delete-budget.js";
import { registerRevokeOrgKey } from "./billing/revoke-org-key.js";
import { registerCreatePortalSession } from "./billing/create-portal-session.js";
import { registerRevokePortalSession } from "./billing/revoke-portal-session.js";
import { registerGetPortalSession } from "./portal/get-session.js";
import { registerOpenPortalLink } from "./portal/open-link.js";
import { registerServePortalPages } from "./portal/serve-pages.js";
import { registerDeletePaymentMethod } from "./billing/delete-payment-method.js";
import { registerGetAutoTopup } from "./billing/get-auto-topup.js";
import { registerGetBalance } from "./billing/get-balance.js";
import { registerGetInvoice } from "./billing/get-invoice.js";
import { registerGetInvoicePdf } from "./billing/get-invoice-pdf.js";
import { registerGetBillingDetails } from "./billing/get-billing-details.js";
import { registerGetSubscription } from "./billing/get-subscription.js";
import { registerSetBillingDetails } from "./billing/set-billing-details.js";
import { registerListCreditNotes } from "./billing/list-credit-notes.js";
import { registerGetCreditNote } from "./billing/get-credit-note.js";
import { registerGetCreditNotePdf } from "./billing/get-credit-note-pdf.js";
import { registerGetReferrals } from "./billing/get-referrals.js";
import { registerGetUsage } from "./billing/get-usage.js";
import { registerExportInvoiceLines } from "./billing/export-invoice-lines.js";
import { registerExportTransactions } from "./billing/export-transactions.js";
import { registerExportUsage } from "./billing/export-usage.js";
import { registerCreateWebhook } from "./billing/create-webhook.js";
import { registerDeleteWebhook } from "./billing/delete-webhook.js";
import { registerGetWebhook } from "./billing/get-webhook.js";
import { registerListEvents } from "./billing/list-events.js";
import { registerListWebhookDeliveries } from "./billing/list-webhook-deliveries.js";
import { registerListWebhooks } from "./billing/list-webhooks.js";
import { registerRetryWebhookDelivery } from "./billing/retry-webhook-delivery.js";
import { registerRotateWebhookSecret } from "./billing/rotate-webhook-secret.js";
import { registerTestWebhook } from "./billing/test-webhook.js";
import { registerUpdateWebhook } from "./billing/update-webhook.js";
import { registerListInvoices } from "./billing/list-invoices.js";
import { registerListPaymentMethods } from "./billing/list-payment-methods.js";
import { registerListTopups } from "./billing/list-topups.js";
import { registerSetDefaultPaymentMethod } from "./billing/set-default-payment-method.js";
import { registerListTransactions } from "./billing/list-transactions.js";
import { registerSetAutoTopup } from "./billing/set-auto-topup.js";
import { registerUpdateBalanceSettings } from "./billing/update-balance-settings.js";
import { registerAuthorize } from "./gateway/authorize.js";
import { registerAuthorizeBatch } from "./gateway/authorize-batch.js";
import { registerReportUsage } from "./gateway/report-usage.js";
import { registerGetDepositAddress } from "./husd/get-deposit-address.js";
import { registerListDeposits } from "./husd/list-deposits.js";
import { registerRecordTopup } from "./husd/record-topup.js";
import { registerDocs } from "./meta/docs.js";
import { registerHealthz } from "./meta/healthz.js";
import { OPENAPI_DOCUMENT, registerOpenApi } from "./meta/openapi.js";
import { registerOperations } from "./meta/operations.js";
import { registerReadyz } from "./meta/readyz.js";
import { registerListModelPrices } from "./pricing/list-model-prices.js";
import { registerListPlans } from "./pricing/list-plans.js";
import { registerReceiveProcessorEvent } from "./webhooks/receive-processor-event.js";

export type RegisterRoute = (app: OpenAPIHono<AppEnv>, deps: AppDeps) => void;

/**
 * Every route of the API, one `routes/<area>/<operation>.ts` each, in the order of the OpenAPI
 * document. A new operation is added here and nowhere else; test/http/every-endpoint.test.ts
 * then walks it from the document.
 */
export const routes: readonly RegisterRoute[] = [
  // gateway (gateway key)
  registerAuthorize,
  registerAuthorizeBatch,
  registerReportUsage,
  // billing (org key)
  registerGetBalance,
  registerUpdateBalanceSettings,
  registerGetAutoTopup,
  registerSetAutoTopup,
  registerGetSubscription,
  registerListTransactions,
  registerGetReferrals,
  registerGetUsage,
  registerListInvoices,
  // The PDF routes go before the JSON routes of their collection, which would take `x.pdf` as an id.
  registerGetInvoicePdf,
  registerGetInvoice,
  registerListCreditNotes,
  registerGetCreditNotePdf,
  registerGetCreditNote,
  registerGetBillingDetails,
  registerSetBillingDetails,
  registerListPaymentMethods,
  registerCreatePaymentMethodSetup,
  registerSetDefaultPaymentMethod,
  registerDeletePaymentMethod,
  registerCreateTopup,
  registerListTopups,
  registerListEvents,
  registerCreateWebhook,
  registerListWebhooks,
  registerGetWebhook,
  registerUpdateWebhook,
  registerDeleteWebhook,
  registerRotateWebhookSecret,
  registerTestWebhook,
  registerListWebhookDeliveries,
  registerRetryWebhookDelivery,
  registerListKeys,
  registerCreateOrgKey,
  registerRevokeOrgKey,
  registerListGrants,
  registerRedeemPromoCode,
  registerListBudgets,
  registerSetBudget,
  registerDeleteBudget,
  registerExportUsage,
  registerExportInvoiceLines,
  registerExportTransactions,
  registerCreatePortalSession,
  registerRevokePortalSession,
  // husd (org key)
  registerGetDepositAddress,
  registerRecordTopup,
  registerListDeposits,
  // pricing (public)
  registerListModelPrices,
  registerListPlans,
  // webhooks (signed by the processor)
  registerReceiveProcessorEvent,
  // admin (admin key)
  registerCreateOrg,
  registerGetOrg,
  registerCreateKey,
  registerCreatePlatformKey,
  registerListPlatformKeys,
  registerRevokeKey,
  registerGrantCredits,
  registerLinkProcessorCustomer,
  registerSubscribe,
  registerCancelSubscription,
  registerCloseCycles,
  // Before /v1/admin/invoices/{id}/{action}, which would take `credit-notes` as an action.
  registerCreateCreditNote,
  registerSetInvoiceStatus,
  registerCreateAdjustment,
  registerCreatePromoCode,
  registerListPromoCodes,
  registerDeactivatePromoCode,
  // meta: not in the OpenAPI document
  registerHealthz,
  registerReadyz,
  registerOpenApi,
  (app) => registerDocs(app, OPENAPI_DOCUMENT),
  registerOperations,
  // the billing portal: not in the OpenAPI document (its link, its session, its pages)
  registerOpenPortalLink,
  registerGetPortalSession,
  registerServePortalPages,
];
