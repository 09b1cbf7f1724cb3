"""eft.render"""
