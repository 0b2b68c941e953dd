// Recording rules. Names follow `level:metric:operations`. The level
// `provider_account_meter` means one output series per scraped meter: nothing is
// aggregated away, so every output keeps job, instance, provider, account and meter and
// joins one-to-one with the exporter's own series.
//
// Every rule covers only meters with a positive cap (`saas_quota_limit > 0`):
//   - unlimited or unknown caps have no saas_quota_limit series, so they produce no
//     output at all (not 0, not NaN);
//   - a cap of 0 is a real cap ("not in your plan") but there is nothing to divide by;
//     the `> 0` guard (kubernetes-mixin's `(hard > 0)`) drops it instead of producing
//     +Inf or NaN.
//
// Burn rates use deriv() over a gauge, never rate(): `used` drops when a window resets.
// The slope across a reset is negative and is clamped to 0 (consumption is never
// negative), so forecasts pause for up to one window after a reset instead of
// inventing one. A burn rate of 0 gives no time-to-exhaustion series (never +Inf).
{
  prometheusRules+:: {
    groups+: [
      {
        name: 'saas-quota.rules',
        rules: [
          {
            // Share of the cap used: 0.5 = half used, 1 = exhausted, > 1 = overage.
            record: 'provider_account_meter:saas_quota_used_per_limit:ratio',
            expr: 'saas_quota_used / (saas_quota_limit > 0)',
          },
          {
            // Burn rate in the meter's unit per second over the last hour ("current").
            record: 'provider_account_meter:saas_quota_used:deriv1h',
            expr: 'clamp_min(deriv(saas_quota_used[1h]), 0) and (saas_quota_limit > 0)',
          },
          {
            // Burn rate over the last six hours ("sustained"); damps short bursts.
            record: 'provider_account_meter:saas_quota_used:deriv6h',
            expr: 'clamp_min(deriv(saas_quota_used[6h]), 0) and (saas_quota_limit > 0)',
          },
          {
            // Seconds until remaining reaches 0 at the current (1h) burn rate.
            record: 'provider_account_meter:saas_quota_seconds_to_exhaustion:deriv1h',
            expr: 'saas_quota_remaining / (provider_account_meter:saas_quota_used:deriv1h > 0)',
          },
          {
            // Seconds until remaining reaches 0 at the sustained (6h) burn rate.
            record: 'provider_account_meter:saas_quota_seconds_to_exhaustion:deriv6h',
            expr: 'saas_quota_remaining / (provider_account_meter:saas_quota_used:deriv6h > 0)',
          },
          {
            // Share of the current window that has elapsed (0..1), where the vendor
            // reports both the window start and its reset. Compared with the used
            // ratio, it says whether usage is ahead of the pace the window allows.
            record: 'provider_account_meter:saas_quota_period_elapsed:ratio',
            expr: |||
              clamp(
                (time() - saas_quota_period_start_timestamp_seconds)
                / ((saas_quota_reset_timestamp_seconds - saas_quota_period_start_timestamp_seconds) > 0),
                0, 1
              )
              and (saas_quota_limit > 0)
            |||,
          },
        ],
      },
    ],
  },
}
