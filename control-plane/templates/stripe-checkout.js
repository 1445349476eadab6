// The hosted checkout page of a mode with Stripe: the card goes into Stripe.js's card Element
// and is saved with confirmCardSetup (3-D Secure, if the card asks, happens there); then the
// form posts the SetupIntent's id and the control plane charges the saved card through a
// payment intent (docs/payments.md). No card number ever reaches Tollgate.
(function () {
  'use strict';
  var form = document.getElementById('pay-form');
  if (!form || typeof window.Stripe !== 'function') {
    return;
  }
  var stripe = window.Stripe(form.dataset.stripeKey);
  var card = stripe.elements().create('card');
  card.mount('#card-element');
  var error = document.getElementById('card-error');
  var button = document.getElementById('pay');
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    button.disabled = true;
    error.hidden = true;
    stripe
      .confirmCardSetup(form.dataset.clientSecret, { payment_method: { card: card } })
      .then(function (result) {
        if (result.error) {
          error.textContent = result.error.message || 'Your card could not be saved.';
          error.hidden = false;
          button.disabled = false;
          return;
        }
        document.getElementById('setup_intent').value = result.setupIntent.id;
        form.submit();
      });
  });
})();
