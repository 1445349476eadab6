// The card forms of a mode with Stripe (the hosted checkout page and the portal's "replace
// card"): the card goes into Stripe.js's card Element and is saved with confirmCardSetup
// (3-D Secure, if the card asks, happens there); then the form posts the SetupIntent's id and
// the control plane puts the saved card on file (and, at checkout, charges it through a
// payment intent; docs/payments.md). No card number ever reaches Tollgate.
(function () {
  'use strict';
  var form = document.querySelector('form[data-client-secret]');
  if (!form || typeof window.Stripe !== 'function') {
    return;
  }
  var stripe = window.Stripe(form.dataset.stripeKey);
  var card = stripe.elements().create('card');
  card.mount(form.querySelector('.card-element'));
  var error = form.querySelector('.card-error');
  var button = form.querySelector('button[type=submit]');
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
        form.querySelector('input[name=setup_intent]').value = result.setupIntent.id;
        form.submit();
      });
  });
})();
