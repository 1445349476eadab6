// The authentication page of a mode with Stripe: Stripe.js runs the card's 3-D Secure step for
// the payment intent (handleCardAction; an emulator without it, confirmCardPayment), then the
// form tells the control plane how it went, and the payments worker confirms the charge.
(function () {
  'use strict';
  var form = document.getElementById('authenticate-form');
  if (!form || typeof window.Stripe !== 'function' || !form.dataset.clientSecret) {
    return;
  }
  var stripe = window.Stripe(form.dataset.stripeKey);
  var act = typeof stripe.handleCardAction === 'function'
    ? stripe.handleCardAction
    : stripe.confirmCardPayment;
  Promise.resolve(act(form.dataset.clientSecret)).then(function (result) {
    document.getElementById('outcome').value = result && !result.error ? 'complete' : 'fail';
    form.submit();
  });
})();
