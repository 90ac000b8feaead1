/*
 * The page that shows a new secret once: a "Copy" button for each secret.
 *
 * Uses the asynchronous clipboard API where the browser allows it (HTTPS or localhost),
 * else selects the text so that the admin can copy it by hand. The secret never leaves
 * the page otherwise.
 */
"use strict";
(function () {
    async function copy(button) {
        const input = document.getElementById(button.dataset.copyTarget);
        const status = document.getElementById(input.id + "-status");
        try {
            await navigator.clipboard.writeText(input.value);
            status.textContent = "Copied.";
        } catch (error) {
            input.focus();
            input.select();
            status.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
        }
    }

    document.addEventListener("click", function (event) {
        const button = event.target.closest("button[data-copy-target]");
        if (button) {
            copy(button);
        }
    });
    document.addEventListener("focusin", function (event) {
        if (event.target.classList && event.target.classList.contains("apikeys-secret")) {
            event.target.select();
        }
    });
})();
