"""Test banks: for every assignment, real submissions with the exact score each must get.

``common`` builds submissions from an assignment's committed student version; each module
``aN_name`` lists that assignment's cases (:func:`cases`). The grading tests grade each bank once
per test session, through the sandbox.
"""
